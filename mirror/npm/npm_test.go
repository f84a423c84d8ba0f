package npm_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/fakenpm"
	"github.com/mirror-proxy/mirror-proxy/mirror/mirrortest"
	"github.com/mirror-proxy/mirror-proxy/proxy"
	"github.com/mirror-proxy/mirror-proxy/storage"
	"github.com/mirror-proxy/mirror-proxy/storage/local"
)

type env struct {
	up    *fakenpm.Server
	store *local.Store
	url   string // the mirror's base URL
}

func newEnv(t *testing.T) *env {
	up := fakenpm.New()
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(up.Stop)
	st, _ := local.New(t.TempDir())
	srv := proxy.New(proxy.Options{Store: st, MetaPrefix: "mirror-meta", DistPrefix: "mirror-dist",
		Mirrors:         []proxy.Mirror{{Name: "npm", Type: "npm", URL: up.URL(), TTL: time.Minute, NotFoundTTL: time.Second}},
		UpstreamTimeout: 5 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), StdHTTP: mirrortest.StdHTTP()})
	hsURL := mirrortest.ServeProxy(t, srv)
	return &env{up: up, store: st, url: hsURL + "/npm"}
}

func get(t *testing.T, url string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

type packument struct {
	Name     string            `json:"name"`
	DistTags map[string]string `json:"dist-tags"`
	Time     map[string]string `json:"time"`
	Versions map[string]struct {
		Dist struct {
			Tarball   string `json:"tarball"`
			Integrity string `json:"integrity"`
		} `json:"dist"`
	} `json:"versions"`
}

func distKeys(t *testing.T, st storage.Store) []string {
	var keys []string
	_ = st.List(context.Background(), "mirror-dist/", func(i storage.Info) error { keys = append(keys, i.Key); return nil })
	return keys
}

// Both representations of plain and scoped packuments, with every tarball
// URL leading to the proxy; tarballs verified and served; an upstream
// outage serves stale packuments and is never a 404.
func TestPackumentsAndTarballs(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct{ path, name string }{{"/is-even", "is-even"}, {"/@acme%2futil", "@acme/util"}, {"/@acme/util", "@acme/util"}} {
		for _, accept := range []string{"application/json", "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*"} {
			resp, body := get(t, e.url+c.path, "Accept", accept, "Accept-Encoding", "identity")
			var p packument
			if resp.StatusCode != 200 || json.Unmarshal(body, &p) != nil || p.Name != c.name {
				t.Fatalf("%s (%s): %d %s", c.path, accept, resp.StatusCode, body)
			}
			if !strings.Contains(resp.Header.Get("Vary"), "Accept") {
				t.Errorf("%s: Vary %q lacks Accept", c.path, resp.Header.Get("Vary"))
			}
			abbreviated := strings.Contains(accept, "install-v1")
			if ct := resp.Header.Get("Content-Type"); abbreviated != strings.Contains(ct, "install-v1") || abbreviated == (p.Time != nil) {
				t.Errorf("%s (%s): Content-Type %q, time %v", c.path, accept, ct, p.Time != nil)
			}
			if p.DistTags["latest"] == "" {
				t.Errorf("%s: dist-tags lost", c.path)
			}
			for v, d := range p.Versions {
				if !strings.HasPrefix(d.Dist.Tarball, e.url+"/"+c.name+"/-/") {
					t.Errorf("%s@%s: tarball %s does not lead to the proxy", c.name, v, d.Dist.Tarball)
				}
				resp, tgz := get(t, d.Dist.Tarball)
				if resp.StatusCode != 200 || !bytes.Equal(tgz, e.up.Tarball(c.name, v)) {
					t.Errorf("%s: %d, %d bytes", d.Dist.Tarball, resp.StatusCode, len(tgz))
				}
			}
		}
	}
	if resp, _ := get(t, e.url+"/old-pkg/-/old-pkg-0.1.0.tgz"); resp.StatusCode != 200 {
		t.Errorf("a tarball with a shasum only: %d", resp.StatusCode)
	}
	if resp, body := get(t, e.url+"/left-pad/-/left-pad-9.9.9.tgz"); resp.StatusCode != 404 {
		t.Errorf("a tarball not in the packument: %d %s", resp.StatusCode, body)
	}
	if resp, _ := get(t, e.url+"/no-such-package"); resp.StatusCode != 404 {
		t.Errorf("an unknown package: %d", resp.StatusCode)
	}
	e.up.Stop()
	resp, body := get(t, e.url+"/is-even", "Accept", "application/json")
	if resp.StatusCode != 200 || !strings.Contains(string(body), "is-even") {
		t.Errorf("stored packument with the upstream down: %d", resp.StatusCode)
	}
	if resp, _ := get(t, e.url+"/never-seen"); resp.StatusCode < 500 {
		t.Errorf("a never-seen package with the upstream down: %d, want 5xx", resp.StatusCode)
	}
}

// A tarball whose bytes do not match its integrity is refused and never
// stored.
func TestCorruptTarballIsNeverStored(t *testing.T) {
	e := newEnv(t)
	e.up.Corrupt("left-pad", "1.3.0", true)
	resp, body := get(t, e.url+"/left-pad/-/left-pad-1.3.0.tgz")
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "sha512") {
		t.Errorf("corrupt tarball: %d %s", resp.StatusCode, body)
	}
	if keys := distKeys(t, e.store); len(keys) != 0 {
		t.Errorf("stored: %v", keys)
	}
}

// npm audit's requests reach the upstream, and ping answers.
func TestAuditIsForwarded(t *testing.T) {
	e := newEnv(t)
	resp, err := http.Post(e.url+"/-/npm/v1/security/advisories/bulk", "application/json", strings.NewReader(`{"left-pad":["1.3.0"]}`))
	if err != nil || resp.StatusCode != 200 || e.up.Audits() != 1 {
		t.Errorf("audit: %v %v, %d audits upstream", err, resp.StatusCode, e.up.Audits())
	}
	if resp, _ := get(t, e.url+"/-/ping"); resp.StatusCode != 200 {
		t.Errorf("ping: %d", resp.StatusCode)
	}
}

// An audit body is capped at 1 MiB as every read route's (announced or
// streamed), and never reaches the upstream when larger.
func TestAuditBodyIsBounded(t *testing.T) {
	e := newEnv(t)
	big := bytes.Repeat([]byte("x"), 2<<20)
	resp, err := http.Post(e.url+"/-/npm/v1/security/advisories/bulk", "application/json", bytes.NewReader(big))
	if err != nil || resp.StatusCode != 413 {
		t.Errorf("2 MiB audit body: %v %v, want 413", err, resp.StatusCode)
	}
	// Chunked: no Content-Length to refuse it early.
	resp, err = http.Post(e.url+"/-/npm/v1/security/advisories/bulk", "application/json", io.MultiReader(bytes.NewReader(big)))
	if err == nil && resp.StatusCode == 200 {
		t.Errorf("2 MiB chunked audit body: 200, want 413 or a cut connection")
	}
	if e.up.Audits() != 0 && resp != nil && resp.StatusCode == 200 {
		t.Errorf("an oversized audit reached the upstream")
	}
}
