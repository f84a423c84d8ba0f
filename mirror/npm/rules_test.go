package npm_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/fakenpm"
	"github.com/mirror-proxy/mirror-proxy/mirror/mirrortest"
	"github.com/mirror-proxy/mirror-proxy/policy"
	"github.com/mirror-proxy/mirror-proxy/proxy"
	"github.com/mirror-proxy/mirror-proxy/storage/local"
)

// Strict mode refuses unlisted packages with a message; a denied version
// leaves the packument (latest moves back) and its tarball is a 403.
func TestAllowAndDenyRules(t *testing.T) {
	up := fakenpm.New()
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	d, _ := policy.ParseDeny("left-pad@1.3.0")
	base := mirrortest.Serve(t, proxy.Mirror{Name: "npm", Type: "npm", URL: up.URL(),
		Rules: policy.Rules{Allow: []string{"left-pad", "@acme/*"}, Deny: []policy.Deny{d}}})
	if code, _, b, _ := mirrortest.Get(t, base+"/is-odd"); code != 404 || !strings.Contains(string(b), "not approved") {
		t.Errorf("unlisted package: %d %s", code, b)
	}
	if code, _, _, _ := mirrortest.Get(t, base+"/@acme%2futil"); code != 200 {
		t.Errorf("listed scoped package: %d", code)
	}
	_, _, b, _ := mirrortest.Get(t, base+"/left-pad", "Accept", "application/vnd.npm.install-v1+json")
	var p packument
	json.Unmarshal(b, &p)
	if _, denied := p.Versions["1.3.0"]; denied || p.DistTags["latest"] != "1.2.0" {
		t.Errorf("left-pad: versions %d, dist-tags %v", len(p.Versions), p.DistTags)
	}
	if code, _, b, _ := mirrortest.Get(t, base+"/left-pad/-/left-pad-1.3.0.tgz"); code != 403 || !strings.Contains(string(b), "denied") {
		t.Errorf("denied tarball: %d %s", code, b)
	}
}

// Policies fail closed: a tarball in storage whose version the upstream
// has since taken down (the usual end of a malicious version) stays
// refused by a deny rule, and by the cooldown (its publish time is no
// longer known: cooldownUnknown decides).
func TestPoliciesStillApplyOnceTheUpstreamDropsTheVersion(t *testing.T) {
	up := fakenpm.New()
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	st, _ := local.New(t.TempDir())
	plain := mirrortest.ServeOn(t, st, proxy.Mirror{Name: "npm", Type: "npm", URL: up.URL()})
	if code, _, _, _ := mirrortest.Get(t, plain+"/left-pad/-/left-pad-1.3.0.tgz"); code != 200 {
		t.Fatalf("download before any policy: %d", code)
	}
	time.Sleep(100 * time.Millisecond) // the commit follows the response
	up.Unpublish("left-pad", "1.3.0")
	d, _ := policy.ParseDeny("left-pad@1.3.0")
	for what, m := range map[string]proxy.Mirror{
		"deny rule": {Rules: policy.Rules{Deny: []policy.Deny{d}}},
		"cooldown":  {Cooldown: policy.Cooldown{Age: time.Hour}},
	} {
		m.Name, m.Type, m.URL, m.TTL = "npm", "npm", up.URL(), time.Millisecond
		base := mirrortest.ServeOn(t, st, m)
		if code, _, b, _ := mirrortest.Get(t, base+"/left-pad/-/left-pad-1.3.0.tgz"); code != 403 {
			t.Errorf("%s: the stored tarball of a version taken down: %d %.100q, want 403", what, code, b)
		}
		if code, _, _, _ := mirrortest.Get(t, base+"/left-pad/-/left-pad-1.2.0.tgz"); code != 200 && what == "deny rule" {
			t.Errorf("%s: a version still listed: %d", what, code)
		}
	}
}
