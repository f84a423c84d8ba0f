package pypi_test

import (
	"encoding/json"
	"net/url"
	"testing"

	"github.com/mirror-proxy/mirror-proxy/internal/fakepypi"
	"github.com/mirror-proxy/mirror-proxy/mirror/mirrortest"
)

func TestContract(t *testing.T) {
	var up *fakepypi.Server
	fn := fakepypi.Filename("mid-wheel", "1.0")
	mirrortest.Run(t, mirrortest.Fixture{
		Type: "pypi",
		Start: func(t *testing.T) (string, func(), func(bool)) {
			up = fakepypi.New(false)
			up.Publish("mid-wheel", fakepypi.Release{Version: "1.0", Size: 3 << 19})
			if err := up.Start("127.0.0.1:0"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(up.Stop)
			return up.IndexURL(), up.Stop, func(on bool) { up.Corrupt(fn, on) }
		},
		Meta: "/simple/dep-pkg/", Missing: "/simple/never-seen/", Header: []string{"Accept", "application/vnd.pypi.simple.v1+json"},
		Forms: [][]string{{"/simple/dep-pkg/", "Accept", "application/vnd.pypi.simple.v1+json"}, {"/simple/dep-pkg/", "Accept", "text/html"},
			{"/simple/foo-bar/", "Accept", "text/html"}, {"/simple/foo-bar/", "Accept", "application/vnd.pypi.simple.v1+json"}},
		File: func(t *testing.T, base string) (string, []byte) {
			page := base + "/simple/mid-wheel/"
			_, _, b, _ := mirrortest.Get(t, page, "Accept", "application/vnd.pypi.simple.v1+json")
			var doc struct {
				Files []struct{ URL string } `json:"files"`
			}
			if err := json.Unmarshal(b, &doc); err != nil || len(doc.Files) == 0 {
				t.Fatalf("page of mid-wheel: %v %s", err, b)
			}
			pu, _ := url.Parse(page)
			ref, _ := url.Parse(doc.Files[0].URL)
			return pu.ResolveReference(ref).String(), up.Wheel(fn)
		},
	})
}
