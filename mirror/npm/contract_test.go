package npm_test

import (
	"encoding/json"
	"testing"

	"github.com/mirror-proxy/mirror-proxy/internal/fakenpm"
	"github.com/mirror-proxy/mirror-proxy/mirror/mirrortest"
)

func TestContract(t *testing.T) {
	var up *fakenpm.Server
	mirrortest.Run(t, mirrortest.Fixture{
		Type: "npm",
		Start: func(t *testing.T) (string, func(), func(bool)) {
			up = fakenpm.New()
			up.Publish("big-pkg", fakenpm.Version{Version: "1.0.0", Size: 3 << 19})
			up.Publish("victim", fakenpm.Version{Version: "1.0.0"})
			up.Publish("victim.abbreviated", fakenpm.Version{Version: "6.6.6"})
			if err := up.Start("127.0.0.1:0"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(up.Stop)
			return up.URL(), up.Stop, func(on bool) { up.Corrupt("big-pkg", "1.0.0", on) }
		},
		Meta: "/is-even", Missing: "/never-seen", Header: []string{"Accept", "application/vnd.npm.install-v1+json"},
		Forms: [][]string{
			{"/victim.abbreviated", "Accept", "application/json"},
			{"/victim", "Accept", "application/vnd.npm.install-v1+json"},
			{"/victim", "Accept", "application/json"},
			{"/victim.abbreviated", "Accept", "application/vnd.npm.install-v1+json"},
		},
		File: func(t *testing.T, base string) (string, []byte) {
			_, _, b, _ := mirrortest.Get(t, base+"/big-pkg")
			var p packument
			if err := json.Unmarshal(b, &p); err != nil {
				t.Fatal(err)
			}
			return p.Versions["1.0.0"].Dist.Tarball, up.Tarball("big-pkg", "1.0.0")
		},
	})
}
