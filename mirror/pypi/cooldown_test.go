package pypi_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/fakepypi"
	"github.com/mirror-proxy/mirror-proxy/mirror/mirrortest"
	"github.com/mirror-proxy/mirror-proxy/policy"
	"github.com/mirror-proxy/mirror-proxy/proxy"
)

// Under a 3-day cooldown a file uploaded an hour ago is not on the page
// and its download is a 403 naming the date; an exempt project shows it.
func TestCooldownHidesYoungFiles(t *testing.T) {
	up := fakepypi.New(false)
	now := time.Now()
	up.Publish("fresh-pkg", fakepypi.Release{Version: "1.0", Uploaded: now.Add(-10 * 24 * time.Hour)})
	up.Publish("fresh-pkg", fakepypi.Release{Version: "2.0", Uploaded: now.Add(-time.Hour)})
	up.Publish("exempt-pkg", fakepypi.Release{Version: "2.0", Uploaded: now.Add(-time.Hour)})
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	base := mirrortest.Serve(t, proxy.Mirror{Name: "pypi", Type: "pypi", URL: up.IndexURL(),
		Cooldown: policy.Cooldown{Age: 72 * time.Hour, Exempt: []string{"exempt-*"}}})
	files := func(project string) []string {
		_, _, b, _ := mirrortest.Get(t, base+"/simple/"+project+"/", "Accept", "application/vnd.pypi.simple.v1+json")
		var doc struct {
			Files []struct{ Filename string } `json:"files"`
		}
		json.Unmarshal(b, &doc)
		var out []string
		for _, f := range doc.Files {
			out = append(out, f.Filename)
		}
		return out
	}
	if got := files("fresh-pkg"); len(got) != 1 || !strings.Contains(got[0], "1.0") {
		t.Errorf("fresh-pkg under the cooldown lists %v, want 1.0 only", got)
	}
	if got := files("exempt-pkg"); len(got) != 1 {
		t.Errorf("exempt-pkg lists %v", got)
	}
	// Find the key of 2.0 through the fake's index (the proxy hides it).
	_, _, raw, _ := mirrortest.Get(t, up.IndexURL()+"/fresh-pkg/", "Accept", "application/vnd.pypi.simple.v1+json")
	var updoc struct {
		Files []struct {
			Filename string
			Hashes   map[string]string
		} `json:"files"`
	}
	json.Unmarshal(raw, &updoc)
	for _, f := range updoc.Files {
		if !strings.Contains(f.Filename, "2.0") {
			continue
		}
		code, _, body, _ := mirrortest.Get(t, base+"/files/fresh-pkg/"+f.Hashes["sha256"]+"/"+f.Filename)
		if code != 403 || !strings.Contains(string(body), "cooldown") || !strings.Contains(string(body), now.Add(71*time.Hour).UTC().Format("2006-01-02")) {
			t.Errorf("download of the young file: %d %s", code, body)
		}
	}
}
