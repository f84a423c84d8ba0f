package pypi_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/storage/local"

	"github.com/mirror-proxy/mirror-proxy/internal/fakepypi"
	"github.com/mirror-proxy/mirror-proxy/mirror/mirrortest"
	"github.com/mirror-proxy/mirror-proxy/policy"
	"github.com/mirror-proxy/mirror-proxy/proxy"
)

// Strict mode refuses unlisted projects with a message; a denied version
// stays on the page, yanked with the reason (clients skip it unless it is
// pinned, and then show the reason), and its file is a 403 with the reason.
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
		Files []struct {
			Filename string
			Yanked   any
		} `json:"files"`
	}
	json.Unmarshal(b, &doc)
	var yanked, served []string
	for _, f := range doc.Files {
		if why, ok := f.Yanked.(string); ok && strings.Contains(why, "denied by the mirror's policy") {
			yanked = append(yanked, f.Filename)
		} else if f.Yanked == nil {
			served = append(served, f.Filename)
		}
	}
	if len(yanked) != 1 || !strings.Contains(yanked[0], "1.0") || len(served) != 1 || !strings.Contains(served[0], "2.0") {
		t.Errorf("dep-pkg lists %+v, want 2.0, and 1.0 yanked with the deny rule as the reason", doc.Files)
	}
	_, _, h, _ := mirrortest.Get(t, base+"/simple/dep-pkg/", "Accept", "text/html")
	if !strings.Contains(string(h), `data-yanked="dep-pkg 1.0 is denied by the mirror&#39;s policy`) {
		t.Errorf("the HTML page does not yank the denied file with the reason:\n%s", h)
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

// Policies fail closed: a file in storage whose release the upstream has
// since taken down stays refused by a deny rule, and by the cooldown (its
// upload time is no longer known: cooldownUnknown decides).
func TestPoliciesStillApplyOnceTheUpstreamDropsTheVersion(t *testing.T) {
	up := fakepypi.New(false)
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	st, _ := local.New(t.TempDir())
	plain := mirrortest.ServeOn(t, st, proxy.Mirror{Name: "pypi", Type: "pypi", URL: up.IndexURL()})
	_, _, b, _ := mirrortest.Get(t, plain+"/simple/dep-pkg/", "Accept", "application/vnd.pypi.simple.v1+json")
	var doc struct {
		Files []struct{ Filename, URL string } `json:"files"`
	}
	json.Unmarshal(b, &doc)
	var file string
	for _, f := range doc.Files {
		if strings.Contains(f.Filename, "-1.0-") {
			file = strings.TrimPrefix(f.URL, "../..")
		}
	}
	if code, _, b, _ := mirrortest.Get(t, plain+file); file == "" || code != 200 {
		t.Fatalf("download before any policy (%q): %d %.100q", file, code, b)
	}
	time.Sleep(100 * time.Millisecond) // the commit follows the response
	up.Remove("dep-pkg", "1.0")
	d, _ := policy.ParseDeny("dep-pkg@1.0")
	for what, m := range map[string]proxy.Mirror{
		"deny rule": {Rules: policy.Rules{Deny: []policy.Deny{d}}},
		"cooldown":  {Cooldown: policy.Cooldown{Age: time.Hour}},
	} {
		m.Name, m.Type, m.URL, m.TTL = "pypi", "pypi", up.IndexURL(), time.Millisecond
		base := mirrortest.ServeOn(t, st, m)
		if code, _, b, _ := mirrortest.Get(t, base+file); code != 403 {
			t.Errorf("%s: the stored file of a release taken down: %d %.100q, want 403", what, code, b)
		}
	}
}
