package servertest_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/fetch"
	"github.com/mirror-proxy/mirror-proxy/internal/fakegoproxy"
	"github.com/mirror-proxy/mirror-proxy/mirror/mirrortest"
	"github.com/mirror-proxy/mirror-proxy/proxy"
	"github.com/mirror-proxy/mirror-proxy/storage/local"
)

// The upstream's credentials go to the upstream only: the checksum
// database, on another origin, never gets them (it did: its client was
// the mirror's with the database's URL, so a credential for "the mirror's
// origin" became one for the database's).
func TestGoSumDBGetsNoUpstreamCredentials(t *testing.T) {
	up := fakegoproxy.New()
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	var mu sync.Mutex
	var seen []string
	target, _ := url.Parse(up.SumDBURL())
	rp := httputil.NewSingleHostReverseProxy(target)
	db := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	defer db.Close()
	sumdb, _ := json.Marshal([]map[string]string{{"key": up.VerifierKey, "url": db.URL}})
	st, _ := local.New(t.TempDir())
	srv := newServer(proxy.Options{Store: st, MetaPrefix: "mirror-meta", DistPrefix: "mirror-dist",
		Mirrors: []proxy.Mirror{{Name: "go", Type: "go", URL: up.URL(), TTL: time.Minute, NotFoundTTL: time.Second,
			Auth:    []fetch.HostAuth{{Bearer: "upstream-secret-0123456789"}},
			Options: map[string]json.RawMessage{"sumdb": sumdb}}},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	base := mirrortest.ServeProxy(t, srv) + "/go"
	if resp, body, _ := do(t, "GET", base+"/example.com/lib/@v/v1.0.0.zip"); resp.StatusCode != 200 {
		t.Fatalf("zip: %d %s", resp.StatusCode, body)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) == 0 {
		t.Fatal("the checksum database was not asked")
	}
	for _, a := range seen {
		if strings.Contains(a, "upstream-secret") {
			t.Errorf("the checksum database got the upstream's credential")
		}
	}
}
