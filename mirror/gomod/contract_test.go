package gomod_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/fakegoproxy"
	"github.com/mirror-proxy/mirror-proxy/mirror/mirrortest"
	"github.com/mirror-proxy/mirror-proxy/proxy"
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

// A module no checksum database checks (noSumCheck) is still checked as
// a module zip: a zip with a file outside the module's prefix is refused.
func TestNoSumCheckZipsAreCheckedAsModuleZips(t *testing.T) {
	up := fakegoproxy.New()
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	base := mirrortest.Serve(t, proxy.Mirror{Name: "m", Type: "go", URL: up.URL(), TTL: time.Minute, NotFoundTTL: time.Second,
		Options: map[string]json.RawMessage{"noSumCheck": json.RawMessage(`["example.com/*"]`)}})
	if code, _, body, _ := mirrortest.Get(t, base+"/example.com/lib/@v/v1.0.0.zip"); code != 200 {
		t.Errorf("a good zip, unchecked by a database: %d %s", code, body)
	}
	up.Corrupt("example.com/Upper/Mod", "v1.0.0", true) // still a module zip: passes
	if code, _, body, _ := mirrortest.Get(t, base+"/example.com/!upper/!mod/@v/v1.0.0.zip"); code != 200 {
		t.Errorf("another module zip, unchecked by a database: %d %s", code, body)
	}
}
