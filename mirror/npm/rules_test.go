package npm_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/mirror-proxy/mirror-proxy/internal/fakenpm"
	"github.com/mirror-proxy/mirror-proxy/mirror/mirrortest"
	"github.com/mirror-proxy/mirror-proxy/policy"
	"github.com/mirror-proxy/mirror-proxy/proxy"
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
