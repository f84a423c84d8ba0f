package pypi_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/mirror-proxy/mirror-proxy/internal/fakepypi"
	"github.com/mirror-proxy/mirror-proxy/mirror/mirrortest"
	"github.com/mirror-proxy/mirror-proxy/policy"
	"github.com/mirror-proxy/mirror-proxy/proxy"
)

// Strict mode refuses unlisted projects with a message; a denied version
// leaves the page and its file is a 403 with the reason.
func TestAllowAndDenyRules(t *testing.T) {
	up := fakepypi.New(false)
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	base := mirrortest.Serve(t, proxy.Mirror{Name: "pypi", Type: "pypi", URL: up.IndexURL(),
		Rules: policy.Rules{Allow: []string{"Dep_Pkg", "foo.*"}, Deny: []policy.Deny{{Name: "dep-pkg", Version: "1.0"}}}})
	if code, _, b, _ := mirrortest.Get(t, base+"/simple/yanky/"); code != 404 || !strings.Contains(string(b), "not approved") {
		t.Errorf("unlisted project: %d %s", code, b)
	}
	if code, _, _, _ := mirrortest.Get(t, base+"/simple/foo-bar/"); code != 200 {
		t.Errorf("listed by pattern: %d", code)
	}
	_, _, b, _ := mirrortest.Get(t, base+"/simple/dep-pkg/", "Accept", "application/vnd.pypi.simple.v1+json")
	var doc struct {
		Files []struct{ Filename string } `json:"files"`
	}
	json.Unmarshal(b, &doc)
	if len(doc.Files) != 1 || !strings.Contains(doc.Files[0].Filename, "2.0") {
		t.Errorf("dep-pkg lists %+v, want 2.0 only", doc.Files)
	}
	_, _, raw, _ := mirrortest.Get(t, up.IndexURL()+"/dep-pkg/", "Accept", "application/vnd.pypi.simple.v1+json")
	var updoc struct {
		Files []struct {
			Filename string
			Hashes   map[string]string
		} `json:"files"`
	}
	json.Unmarshal(raw, &updoc)
	for _, f := range updoc.Files {
		if strings.Contains(f.Filename, "1.0") {
			code, _, body, _ := mirrortest.Get(t, base+"/files/dep-pkg/"+f.Hashes["sha256"]+"/"+f.Filename)
			if code != 403 || !strings.Contains(string(body), "denied") {
				t.Errorf("denied file: %d %s", code, body)
			}
		}
	}
}
