package npm_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
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
	st, _ := local.New(t.TempDir())
	d, _ := policy.ParseDeny("left-pad@1.3.0")
	srv := proxy.New(proxy.Options{Store: st, MetaPrefix: "mirror-meta", DistPrefix: "mirror-dist",
		Mirrors: []proxy.Mirror{{Name: "npm", Type: "npm", URL: up.URL(), TTL: time.Minute, NotFoundTTL: time.Second,
			Rules: policy.Rules{Allow: []string{"left-pad", "@acme/*"}, Deny: []policy.Deny{d}}}},
		UpstreamTimeout: 5 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	hs := httptest.NewServer(srv.Handler())
	defer func() { hs.Close(); srv.Close() }()
	base := hs.URL + "/npm"
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
