package nix_test

import (
	"math/rand"
	"testing"

	"github.com/mirror-proxy/mirror-proxy/internal/fakenix"
	"github.com/mirror-proxy/mirror-proxy/mirror/mirrortest"
)

func TestContract(t *testing.T) {
	var up *fakenix.Server
	var narFile string
	mirrortest.Run(t, mirrortest.Fixture{
		Type: "nix",
		Start: func(t *testing.T) (string, func(), func(bool)) {
			up = fakenix.New()
			nar := make([]byte, 3<<19)
			rand.New(rand.NewSource(1)).Read(nar)
			_, narFile = up.Add("big", nar)
			if err := up.Start("127.0.0.1:0"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(up.Stop)
			return up.URL(), up.Stop, func(on bool) { up.Corrupt("nar/"+narFile, on) }
		},
		Meta: "/nix-cache-info", Missing: "/00000000000000000000000000000000.narinfo",
		File: func(t *testing.T, base string) (string, []byte) {
			return base + "/nar/" + narFile, up.File("nar/" + narFile)
		},
	})
}
