package cran_test

import (
	"testing"

	"github.com/mirror-proxy/mirror-proxy/internal/fakecran"
	"github.com/mirror-proxy/mirror-proxy/mirror/mirrortest"
)

func TestContract(t *testing.T) {
	var up *fakecran.Server
	mirrortest.Run(t, mirrortest.Fixture{
		Type: "cran",
		Start: func(t *testing.T) (string, func(), func(bool)) {
			up = fakecran.New()
			up.Publish("big", fakecran.Version{Version: "2.0", Size: 3 << 19})
			if err := up.Start("127.0.0.1:0"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(up.Stop)
			return up.URL(), up.Stop, func(on bool) { up.Corrupt("big", "2.0", on) }
		},
		Meta: "/src/contrib/PACKAGES.gz", Missing: "/bin/windows/contrib/4.2/PACKAGES",
		Forms: [][]string{{"/src/contrib/PACKAGES.gz"}, {"/src/contrib/PACKAGES"}},
		File: func(t *testing.T, base string) (string, []byte) {
			return base + "/src/contrib/big_2.0.tar.gz", up.Tarball("big", "2.0")
		},
	})
}
