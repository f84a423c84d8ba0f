package servertest_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/mirror/mirrortest"
	"github.com/mirror-proxy/mirror-proxy/policy"
	"github.com/mirror-proxy/mirror-proxy/proxy"
	"github.com/mirror-proxy/mirror-proxy/storage/local"
)

func statusGet(t *testing.T, url, accept, token string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if token != "" {
		req.SetBasicAuth("token", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// The status page under tokens: an anonymous reader sees each mirror's
// name and health only (no type, upstream, policies, client snippet, and
// no package name anywhere); a token limited to one mirror sees that
// mirror's details; the JSON form carries the same data, with Vary.
func TestStatusPageShowsOnlyWhatTheReaderMayRead(t *testing.T) {
	st, _ := local.New(t.TempDir())
	const secret, limited = "status-reader-token-0123", "status-limited-token-0123"
	srv := newServer(proxy.Options{Store: st, MetaPrefix: "m", DistPrefix: "d", Logger: slog.New(slog.DiscardHandler),
		PublicURL: "https://packages.example.com",
		Mirrors: []proxy.Mirror{
			{Name: "pypi", Type: "pypi", URL: "http://127.0.0.1:1/simple", TTL: time.Minute, NotFoundTTL: time.Second,
				Cooldown: policy.Cooldown{Age: 72 * time.Hour}, Rules: policy.Rules{Deny: []policy.Deny{{Name: "secret-internal-pkg"}}}},
			{Name: "npm", Type: "npm", URL: "http://user:hunter2@127.0.0.1:1", TTL: time.Minute, NotFoundTTL: time.Second},
			{Name: "internal", Type: "composer", Hosted: true, TTL: time.Minute},
		},
		Tokens: []proxy.Token{token(t, "reader", secret, true, false), token(t, "npm-only", limited, true, false, "npm")},
	})
	defer srv.Close()
	base := mirrortest.ServeProxy(t, srv)

	code, h, anon := statusGet(t, base+"/", "", "")
	if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", code, h.Get("Content-Type"))
	}
	csp := h.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe") {
		t.Errorf("Content-Security-Policy: %q", csp)
	}
	for _, name := range []string{"pypi", "npm", "internal"} {
		if !strings.Contains(anon, ">"+name+" <") {
			t.Errorf("anonymous page lacks mirror %s", name)
		}
	}
	for _, hidden := range []string{"secret-internal-pkg", "127.0.0.1:1", "cooldown", "deny", "pip config", "npm config", "hunter2", "Cache hits"} {
		if strings.Contains(anon, hidden) {
			t.Errorf("anonymous page shows %q", hidden)
		}
	}
	if !strings.Contains(anon, "sign in with a token") {
		t.Error("anonymous page does not say how to see more")
	}

	_, _, full := statusGet(t, base+"/-/status", "", secret)
	for _, want := range []string{"pip config set global.index-url https://packages.example.com/pypi/simple/",
		"npm config set registry https://packages.example.com/npm/", "composer config repos.packagist composer https://packages.example.com/internal",
		"cooldown: versions younger than 3d are hidden", "1 deny rule", "Cache hits"} {
		if !strings.Contains(full, want) {
			t.Errorf("a reader's page lacks %q", want)
		}
	}
	for _, hidden := range []string{"secret-internal-pkg", "hunter2"} {
		if strings.Contains(full, hidden) {
			t.Errorf("a reader's page shows %q", hidden)
		}
	}

	code, h, js := statusGet(t, base+"/", "application/json", limited)
	if code != 200 || !strings.Contains(h.Get("Vary"), "Accept") || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
		t.Fatalf("JSON: %d %v", code, h)
	}
	var doc proxy.Status
	if err := json.Unmarshal([]byte(js), &doc); err != nil {
		t.Fatal(err)
	}
	for _, m := range doc.Mirrors {
		if detailed := m.Type != ""; detailed != (m.Name == "npm") {
			t.Errorf("npm-only token: mirror %s detailed=%v", m.Name, detailed)
		}
	}
	if doc.Totals != nil || !doc.Limited {
		t.Error("a token limited to one mirror sees the replica's totals")
	}

	// ?login asks the browser for a token.
	if code, h, _ := statusGet(t, base+"/-/status?login", "", ""); code != 401 || h.Get("WWW-Authenticate") == "" {
		t.Errorf("?login without a token: %d %v", code, h)
	}
	if code, _, _ := statusGet(t, base+"/-/status?login", "", secret); code != 200 {
		t.Errorf("?login with a token: %d", code)
	}
	// The page's own assets.
	for _, p := range []string{"/-/status.css", "/-/status.js"} {
		if code, _, body := statusGet(t, base+p, "", ""); code != 200 || len(body) == 0 {
			t.Errorf("%s: %d", p, code)
		}
	}
}

// An upstream's failures show on the status page (health, last error) and
// in mirror_upstream_results_total by outcome.
func TestStatusPageUpstreamHealth(t *testing.T) {
	st, _ := local.New(t.TempDir())
	srv := newServer(proxy.Options{Store: st, MetaPrefix: "m", DistPrefix: "d", Logger: slog.New(slog.DiscardHandler),
		Mirrors: []proxy.Mirror{{Name: "pypi", Type: "pypi", URL: "http://127.0.0.1:1/simple", TTL: time.Minute, NotFoundTTL: time.Second}}})
	defer srv.Close()
	base := mirrortest.ServeProxy(t, srv)
	if code, _, _ := statusGet(t, base+"/pypi/simple/requests/", "", ""); code != 502 && code != 503 && code != 504 {
		t.Fatalf("cold miss with the upstream down: %d", code)
	}
	_, _, js := statusGet(t, base+"/", "application/json", "")
	var doc proxy.Status
	_ = json.Unmarshal([]byte(js), &doc)
	m := doc.Mirrors[0]
	if m.Health != "failing" || m.LastError == nil || !strings.Contains(m.LastError.Message, "connect") || m.Counts.Errors != 1 || m.Counts.CacheMisses == 0 {
		t.Errorf("status of a mirror whose upstream refuses connections: %+v %+v", m, m.LastError)
	}
	_, _, metrics := statusGet(t, base+"/metrics", "", "")
	if !bytes.Contains([]byte(metrics), []byte(`mirror_upstream_results_total{mirror="pypi",outcome="connect"} 1`)) {
		t.Errorf("metrics lack the connect failure:\n%s", grepLines(metrics, "mirror_upstream_results"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// Probes are logged only when their answer changes: the first /healthz
// and /readyz are logged, the repeats are not (they would be most of a
// replica's log), and other requests always are.
func TestProbesLoggedOnlyWhenTheirAnswerChanges(t *testing.T) {
	st, _ := local.New(t.TempDir())
	var logs logBuf
	srv := newServer(proxy.Options{Store: st, MetaPrefix: "m", DistPrefix: "d", Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	defer srv.Close()
	base := mirrortest.ServeProxy(t, srv)
	for i := 0; i < 5; i++ {
		statusGet(t, base+"/healthz", "", "")
		statusGet(t, base+"/readyz", "", "")
		statusGet(t, base+"/-/status.css", "", "")
	}
	out := logs.String()
	for path, want := range map[string]int{"/healthz": 1, "/readyz": 1, "/-/status.css": 5} {
		if n := strings.Count(out, "path="+path+" "); n != want {
			t.Errorf("%s logged %d times, want %d", path, n, want)
		}
	}
}
