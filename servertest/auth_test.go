package servertest_test

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/mirror/mirrortest"
	"github.com/mirror-proxy/mirror-proxy/proxy"
	"github.com/mirror-proxy/mirror-proxy/storage/local"
)

// TestUpstreamCredentialsGoOnlyToTheirHost: a private upstream that needs
// basic auth lists a dist on another host (like a CDN); the credential
// reaches the upstream and never the other host. A wrong credential is a
// 502 naming the problem, not a 404.
func TestUpstreamCredentialsGoOnlyToTheirHost(t *testing.T) {
	zip := []byte("PK fake zip bytes")
	sum := sha1.Sum(zip)
	var mu sync.Mutex
	cdnAuth := []string{}
	cdn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		cdnAuth = append(cdnAuth, r.Header.Get("Authorization"))
		mu.Unlock()
		w.Write(zip)
	}))
	defer cdn.Close()
	password := "s3cret"
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "token" || p != password {
			http.Error(w, "auth required", http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/packages.json":
			io.WriteString(w, `{"packages":[],"metadata-url":"/p2/%package%.json"}`)
		case "/p2/priv/pkg.json":
			fmt.Fprintf(w, `{"packages":{"priv/pkg":[{"name":"priv/pkg","version":"1.0.0","version_normalized":"1.0.0.0",
			  "dist":{"type":"zip","url":%q,"reference":"abc","shasum":%q}}]}}`, cdn.URL+"/priv/pkg-1.0.0.zip", hex.EncodeToString(sum[:]))
		default:
			http.NotFound(w, r)
		}
	}))
	defer up.Close()
	st, _ := local.New(t.TempDir())
	host := strings.TrimPrefix(up.URL, "http://")
	srv := newServer(proxy.Options{Store: st, MetaPrefix: "m", DistPrefix: "d",
		Mirrors: []proxy.Mirror{
			{Name: "priv", Type: "composer", URL: up.URL, TTL: time.Minute, NotFoundTTL: time.Second,
				// The CDN is another port of the same host: trusted only
				// because it is listed (the mirror's origin is one port).
				FileHosts: []string{"127.0.0.1"},
				Auth:      []proxy.HostAuth{{Username: "token", Password: "s3cret"}}},
			{Name: "wrong", Type: "composer", URL: up.URL, TTL: time.Minute, NotFoundTTL: time.Second,
				Auth: []proxy.HostAuth{{Host: host, Username: "token", Password: "nope"}}},
		},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	hsURL := mirrortest.ServeProxy(t, srv)

	resp, body, err := do(t, "GET", hsURL+"/priv/zipball/priv/pkg/1.0.0.0/refabc.zip")
	if err != nil || resp.StatusCode != 200 || string(body) != string(zip) {
		t.Fatalf("dist through an authenticated upstream: %d %v %q", resp.StatusCode, err, body)
	}
	mu.Lock()
	for _, a := range cdnAuth {
		if a != "" {
			t.Errorf("the upstream's credential was sent to another host: %q", a)
		}
	}
	mu.Unlock()
	resp, body, _ = do(t, "GET", hsURL+"/wrong/p2/priv/pkg.json")
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "credentials") {
		t.Errorf("wrong upstream credentials: %d %s, want 502 naming the credentials", resp.StatusCode, body)
	}
	if strings.Contains(string(body), password) {
		t.Errorf("a credential leaked into a response")
	}
}
