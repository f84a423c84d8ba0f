package conda_test

import (
	"testing"

	"github.com/mirror-proxy/mirror-proxy/internal/fakeconda"
	"github.com/mirror-proxy/mirror-proxy/mirror/mirrortest"
)

func TestContract(t *testing.T) {
	var up *fakeconda.Server
	big := fakeconda.Package{Name: "big", Version: "1.0", Build: "0", Subdir: "noarch", Size: 3 << 19}
	mirrortest.Run(t, mirrortest.Fixture{
		Type: "conda",
		Start: func(t *testing.T) (string, func(), func(bool)) {
			up = fakeconda.New()
			up.Publish(big)
			if err := up.Start("127.0.0.1:0"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(up.Stop)
			return up.URL(), up.Stop, func(on bool) { up.Corrupt("noarch", big.Filename(), on) }
		},
		Meta: "/noarch/repodata.json", Missing: "/win-64/repodata.json",
		Forms: [][]string{{"/noarch/repodata.json"}, {"/linux-64/repodata.json"}, {"/noarch/current_repodata.json"},
			{"/linux-64/current_repodata.json"}},
		File: func(t *testing.T, base string) (string, []byte) {
			return base + "/noarch/" + big.Filename(), up.File("noarch", big.Filename())
		},
	})
}
