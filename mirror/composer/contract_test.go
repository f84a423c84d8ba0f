package composer_test

import (
	"testing"

	"github.com/mirror-proxy/mirror-proxy/internal/fakepackagist"
	"github.com/mirror-proxy/mirror-proxy/mirror/composer"
	"github.com/mirror-proxy/mirror-proxy/mirror/mirrortest"
)

func TestContract(t *testing.T) {
	var up *fakepackagist.Server
	mirrortest.Run(t, mirrortest.Fixture{
		Type: "composer",
		Start: func(t *testing.T) (string, func(), func(bool)) {
			up = fakepackagist.New()
			if err := up.Start("127.0.0.1:0"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(up.Stop)
			return up.URL(), up.Stop, func(on bool) { up.Corrupt("acme/big", "1.0.0", on) }
		},
		Meta: "/p2/acme/foo.json", Missing: "/p2/acme/never-seen.json",
		Forms: [][]string{{"/p2/acme/devpkg.json"}, {"/p2/acme/devpkg~dev.json"}, {"/p2/acme/foo.json"}, {"/p2/acme/foo~dev.json"}},
		File: func(t *testing.T, base string) (string, []byte) {
			_, _, b, _ := mirrortest.Get(t, base+"/p2/acme/big.json")
			vs, err := composer.Expand(b, "acme/big")
			if err != nil || len(vs) == 0 {
				t.Fatalf("p2 of acme/big: %v %s", err, b)
			}
			d := vs[0]["dist"].(map[string]any)
			return base + "/zipball/acme/big/" + composer.MirrorVersion(vs[0]["version_normalized"].(string)) +
				"/ref" + composer.MirrorReference(d["reference"].(string)) + ".zip", up.Zip("acme/big", "1.0.0")
		},
	})
}
