package rubygems_test

import (
	"bytes"
	"math/rand"
	"testing"

	"github.com/mirror-proxy/mirror-proxy/internal/fakerubygems"
	"github.com/mirror-proxy/mirror-proxy/mirror/mirrortest"
)

func TestContract(t *testing.T) {
	var up *fakerubygems.Server
	big := make([]byte, 3<<19)
	rand.New(rand.NewSource(1)).Read(big)
	mirrortest.Run(t, mirrortest.Fixture{
		Type: "rubygems",
		Start: func(t *testing.T) (string, func(), func(bool)) {
			up = fakerubygems.New()
			up.Publish(fakerubygems.Gem{Name: "rack", Version: "3.0.0", Bytes: []byte("a gem")})
			up.Publish(fakerubygems.Gem{Name: "big-gem", Version: "2.0.0", Bytes: big})
			if err := up.Start("127.0.0.1:0"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(up.Stop)
			return up.URL(), up.Stop, func(on bool) { up.Corrupt("big-gem-2.0.0.gem", on) }
		},
		Meta: "/info/rack", Missing: "/info/nothing",
		Forms: [][]string{{"/info/rack"}, {"/info/big-gem"}, {"/versions"}, {"/names"}},
		File: func(t *testing.T, base string) (string, []byte) {
			return base + "/gems/big-gem-2.0.0.gem", bytes.Clone(big)
		},
	})
}
