package servertest_test

import (
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/proxy"
)

func token(t *testing.T, name, secret string, read, write bool, mirrors ...string) proxy.Token {
	t.Helper()
	sum, err := proxy.ParseTokenSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	tk := proxy.Token{Name: name, SHA256: sum, Read: read, Write: write}
	if mirrors != nil {
		tk.Mirrors = map[string]bool{}
		for _, m := range mirrors {
			tk.Mirrors[m] = true
		}
	}
	return tk
}

// With tokens configured, every read of a mirror needs one: 401 with a
// Basic challenge without (or with a wrong) token, 403 for a token of
// another mirror; Basic (any username) and Bearer both work; the
// server's own routes stay open; the token never appears in answers or
// logs.
func TestTokensGuardMirrors(t *testing.T) {
	const secret = "s3cret-token-0123456789"
	hashed := sha256.Sum256([]byte("other-token-0123456789"))
	logs := &logBuf{}
	e := newEnvWith(t, time.Minute, func(o *proxy.Options) {
		o.Logger = newTextLogger(logs)
		o.Tokens = []proxy.Token{
			token(t, "ci", secret, true, false),
			token(t, "other", "sha256:"+hex.EncodeToString(hashed[:]), true, false, "elsewhere"),
		}
		o.Mirrors = append(o.Mirrors, proxy.Mirror{Name: "elsewhere", Type: "composer", URL: o.Mirrors[0].URL, TTL: time.Minute, Public: false},
			proxy.Mirror{Name: "open", Type: "composer", URL: o.Mirrors[0].URL, TTL: time.Minute, Public: true})
	})
	base := strings.TrimSuffix(e.url, "/packagist")
	u := e.url + "/p2/acme/foo.json"

	resp, body, _ := do(t, "GET", u)
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != `Basic realm="mirror-proxy"` {
		t.Errorf("no token: %d %q %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
	}
	req, _ := http.NewRequest("GET", u, nil)
	req.SetBasicAuth("__token__", "wrong-token-0123456789")
	if resp, _ := http.DefaultClient.Do(req); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong token: %d", resp.StatusCode)
	}
	for _, auth := range []func(*http.Request){
		func(r *http.Request) { r.SetBasicAuth("__token__", secret) },
		func(r *http.Request) { r.SetBasicAuth("anyone", secret) },
		func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+secret) },
		func(r *http.Request) { r.Header.Set("Authorization", secret) }, // Cargo's way
	} {
		req, _ := http.NewRequest("GET", u, nil)
		auth(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("valid token: %v %v", resp.StatusCode, err)
		}
	}
	req, _ = http.NewRequest("GET", base+"/packagist/packages.json", nil)
	req.SetBasicAuth("x", "other-token-0123456789")
	if resp, _ := http.DefaultClient.Do(req); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a token of another mirror: %d, want 403", resp.StatusCode)
	}
	req, _ = http.NewRequest("GET", base+"/elsewhere/packages.json", nil)
	req.SetBasicAuth("x", "other-token-0123456789")
	if resp, _ := http.DefaultClient.Do(req); resp.StatusCode != 200 {
		t.Errorf("a token of its own mirror: %d", resp.StatusCode)
	}
	if resp, _, _ := do(t, "GET", base+"/open/packages.json"); resp.StatusCode != 200 {
		t.Errorf("a public mirror without a token: %d", resp.StatusCode)
	}
	if resp, _, _ := do(t, "GET", base+"/mirror/packagist/packages.json"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("Packeton's /mirror/ prefix without a token: %d", resp.StatusCode)
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		if resp, _, _ := do(t, "GET", base+p); resp.StatusCode != 200 {
			t.Errorf("%s with tokens configured: %d", p, resp.StatusCode)
		}
	}
	if strings.Contains(logs.String(), secret) || strings.Contains(logs.String(), "other-token") {
		t.Errorf("a token is in the log")
	}
}

func newTextLogger(w *logBuf) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
