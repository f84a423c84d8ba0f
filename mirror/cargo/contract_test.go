package cargo_test

import (
	"testing"

	"github.com/mirror-proxy/mirror-proxy/internal/fakecargo"
	"github.com/mirror-proxy/mirror-proxy/mirror/mirrortest"
)

func TestContract(t *testing.T) {
	var up *fakecargo.Server
	mirrortest.Run(t, mirrortest.Fixture{
		Type: "cargo",
		Start: func(t *testing.T) (string, func(), func(bool)) {
			up = fakecargo.New()
			up.Publish(fakecargo.Crate{Name: "big", Vers: "2.0.0", Size: 3 << 19})
			if err := up.Start("127.0.0.1:0"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(up.Stop)
			return up.URL(), up.Stop, func(on bool) { up.Corrupt("big", "2.0.0", on) }
		},
		Meta: "/he/ll/hello", Missing: "/no/th/nothing",
		Forms: [][]string{{"/he/ll/hello"}, {"/mi/xe/mixed_case"}, {"/3/b/big"}},
		File: func(t *testing.T, base string) (string, []byte) {
			return base + "/dl/big/2.0.0/download", up.CrateFile("big", "2.0.0")
		},
	})
}
