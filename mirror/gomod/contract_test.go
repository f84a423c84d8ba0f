package gomod_test

import (
	"testing"

	"github.com/mirror-proxy/mirror-proxy/internal/fakegoproxy"
	"github.com/mirror-proxy/mirror-proxy/mirror/mirrortest"
)

func TestContract(t *testing.T) {
	var up *fakegoproxy.Server
	mirrortest.Run(t, mirrortest.Fixture{
		Type: "go",
		Start: func(t *testing.T) (string, func(), func(bool)) {
			up = fakegoproxy.New()
			up.Publish(fakegoproxy.Module{Path: "example.com/big", Version: "v2.0.0+incompatible", Size: 3 << 19})
			if err := up.Start("127.0.0.1:0"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(up.Stop)
			return up.URL(), up.Stop, func(on bool) { up.Corrupt("example.com/big", "v2.0.0+incompatible", on) }
		},
		Options: func() map[string]any {
			return map[string]any{"sumdb": []map[string]string{{"key": up.VerifierKey, "url": up.SumDBURL()}}}
		},
		Meta: "/example.com/lib/@v/list", Missing: "/example.com/nothing/@v/list",
		Forms: [][]string{{"/example.com/!upper/!mod/@v/list"}, {"/example.com/lib/@v/list"}, {"/example.com/lib/@latest"}},
		File: func(t *testing.T, base string) (string, []byte) {
			return base + "/example.com/big/@v/v2.0.0+incompatible.zip", up.Zip("example.com/big", "v2.0.0+incompatible")
		},
	})
}
