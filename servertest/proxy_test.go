package servertest_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/fetch"
	"github.com/mirror-proxy/mirror-proxy/internal/fakepackagist"
	"github.com/mirror-proxy/mirror-proxy/mirror/composer"
	"github.com/mirror-proxy/mirror-proxy/mirror/mirrortest"
	"github.com/mirror-proxy/mirror-proxy/proxy"
	"github.com/mirror-proxy/mirror-proxy/storage"
	"github.com/mirror-proxy/mirror-proxy/storage/local"
)

type env struct {
	up    *fakepackagist.Server
	store *local.Store
	srv   *proxy.Server
	url   string
	opts  proxy.Options
}

// restart replaces the proxy by a new one on the same storage and
// options (empty memory, no download in flight): what it serves comes
// from storage.
func (e *env) restart(t testing.TB) {
	t.Helper()
	srv := newServer(e.opts)
	hsURL := mirrortest.ServeProxy(t, srv)
	e.srv, e.url = srv, hsURL+"/packagist"
}

// newServer is proxy.New under the server the tests run with
// (HTTP_SERVER=std: net/http alone; else h1's loop in front of it, as the
// binary's default).
func newServer(o proxy.Options) *proxy.Server {
	if mirrortest.StdHTTP() {
		o.StdHTTP = true
	}
	return proxy.New(o)
}

func newEnv(t testing.TB, ttl time.Duration) *env { t.Helper(); return newEnvWith(t, ttl, nil) }

// newEnvWith starts a fake Packagist and a proxy mirroring it as
// "packagist" on local storage; mod adjusts the proxy's options.
func newEnvWith(t testing.TB, ttl time.Duration, mod func(*proxy.Options)) *env {
	t.Helper()
	return startEnv(t, ttl, mod, func(srv *proxy.Server) string {
		hsURL := mirrortest.ServeProxy(t, srv)
		return hsURL
	})
}

// startEnv is newEnvWith with the server started by serve, which returns
// its base URL.
func startEnv(t testing.TB, ttl time.Duration, mod func(*proxy.Options), serve func(*proxy.Server) string) *env {
	t.Helper()
	up := fakepackagist.New()
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(up.Stop)
	st, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	opts := proxy.Options{
		Store: st, MetaPrefix: "mirror-meta", DistPrefix: "mirror-dist",
		Mirrors:         []proxy.Mirror{{Name: "packagist", Type: "composer", URL: up.URL(), TTL: ttl, NotFoundTTL: time.Second}},
		UpstreamTimeout: 5 * time.Second,
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if mod != nil {
		mod(&opts)
	}
	srv := newServer(opts)
	return &env{up: up, store: st, srv: srv, url: serve(srv) + "/packagist", opts: opts}
}

func do(t testing.TB, method, url string, hdr ...string) (*http.Response, []byte, error) {
	t.Helper()
	return doBody(t, method, url, "", hdr...)
}

// distURL finds the proxy URL of name@version's dist from the p2 file.
func (e *env) distURL(t *testing.T, name, version string) string {
	t.Helper()
	_, body, _ := do(t, "GET", e.url+"/p2/"+name+".json")
	vs, err := composer.Expand(body, name)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		if v["version"] == version {
			d := v["dist"].(map[string]any)
			return e.url + "/zipball/" + name + "/" + composer.MirrorVersion(v["version_normalized"].(string)) +
				"/ref" + composer.MirrorReference(d["reference"].(string)) + ".zip"
		}
	}
	t.Fatalf("%s %s not in the metadata", name, version)
	return ""
}

func TestChecksumMismatchStoresNothingAndHeals(t *testing.T) {
	e := newEnvWith(t, time.Minute, func(o *proxy.Options) { o.VerifyFailureTTL = 300 * time.Millisecond })
	url := e.distURL(t, "acme/foo", "1.1.0")
	e.up.Corrupt("acme/foo", "1.1.0", true)
	resp, body, err := do(t, "GET", url)
	if err == nil && resp.StatusCode == 200 && len(body) == int(resp.ContentLength) {
		t.Fatalf("corrupt upstream bytes were served as a clean 200")
	}
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("small corrupt dist: got %d, want 502", resp.StatusCode)
	}
	n := 0
	_ = e.store.List(context.Background(), "mirror-dist/", func(storage.Info) error { n++; return nil })
	if n != 0 {
		t.Fatalf("a dist with a wrong sha1 was stored")
	}
	e.up.Corrupt("acme/foo", "1.1.0", false)
	if resp, _, _ := do(t, "GET", url); resp.StatusCode != http.StatusBadGateway {
		t.Errorf("right after a mismatch: %d, want the same 502 without a refetch", resp.StatusCode)
	}
	time.Sleep(400 * time.Millisecond) // VerifyFailureTTL
	resp, body, err = do(t, "GET", url)
	if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, e.up.Zip("acme/foo", "1.1.0")) {
		t.Fatalf("after the upstream was fixed: %d, %v", resp.StatusCode, err)
	}
}

func TestLargeCorruptDownloadIsAbortedMidStream(t *testing.T) {
	e := newEnv(t, time.Minute)
	// acme/big is 6 MB with a sha1: it streams, so a mismatch found at the
	// end must abort the transfer.
	url := e.distURL(t, "acme/big", "1.0.0")
	e.up.Corrupt("acme/big", "1.0.0", true)
	resp, body, err := do(t, "GET", url)
	if err == nil && len(body) == int(resp.ContentLength) {
		t.Fatalf("a corrupt 6 MB download finished cleanly (%d bytes, status %d)", len(body), resp.StatusCode)
	}
	n := 0
	_ = e.store.List(context.Background(), "mirror-dist/", func(storage.Info) error { n++; return nil })
	if n != 0 {
		t.Fatalf("a corrupt large dist was stored")
	}
}

func TestUpstreamDownIsNever404(t *testing.T) {
	e := newEnv(t, 50*time.Millisecond)
	if resp, _, _ := do(t, "GET", e.url+"/p2/acme/foo.json"); resp.StatusCode != 200 {
		t.Fatalf("warm-up: %d", resp.StatusCode)
	}
	e.up.Stop()
	time.Sleep(100 * time.Millisecond)
	resp, body, _ := do(t, "GET", e.url+"/p2/acme/foo.json")
	if resp.StatusCode != 200 || resp.Header.Get("X-Mirror-Stale") != "true" || !bytes.Contains(body, []byte("acme/foo")) {
		t.Errorf("stale metadata with the upstream down: %d, stale header %q", resp.StatusCode, resp.Header.Get("X-Mirror-Stale"))
	}
	for _, p := range []string{"/p2/acme/bar.json", "/p2/acme/never-seen.json"} {
		resp, _, _ := do(t, "GET", e.url+p)
		if resp.StatusCode < 500 {
			t.Errorf("GET %s with the upstream down and nothing stored: %d, want 5xx", p, resp.StatusCode)
		}
	}
}

func TestStoredDistHeadRangeAndGzipMetadata(t *testing.T) {
	e := newEnv(t, time.Minute)
	url := e.distURL(t, "acme/foo", "1.0.0")
	want := e.up.Zip("acme/foo", "1.0.0")
	if resp, body, _ := do(t, "GET", url); resp.StatusCode != 200 || !bytes.Equal(body, want) {
		t.Fatalf("cold GET: %d", resp.StatusCode)
	}
	// Once the dist is committed, a new proxy on the same storage serves
	// everything below from storage alone (serveStored, storageSeeker,
	// decodeMeta), not from the download's spool or memory.
	key := "mirror-dist/packagist/acme/foo/" + url[strings.Index(url, "/zipball/acme/foo/")+len("/zipball/acme/foo/"):]
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := e.store.Stat(context.Background(), key); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s was not stored", key)
		}
	}
	e.up.Stop()
	old := e.url
	e.restart(t)
	url = e.url + strings.TrimPrefix(url, old)
	if resp, body, _ := do(t, "GET", url); resp.StatusCode != 200 || !bytes.Equal(body, want) {
		t.Fatalf("GET from storage: %d", resp.StatusCode)
	}
	resp, body, _ := do(t, "HEAD", url)
	if resp.StatusCode != 200 || resp.ContentLength != int64(len(want)) || resp.Header.Get("Accept-Ranges") != "bytes" || len(body) != 0 {
		t.Errorf("HEAD: %d, length %d (want %d), Accept-Ranges %q", resp.StatusCode, resp.ContentLength, len(want), resp.Header.Get("Accept-Ranges"))
	}
	resp, body, _ = do(t, "GET", url, "Range", "bytes=10-19")
	if resp.StatusCode != 206 || !bytes.Equal(body, want[10:20]) {
		t.Errorf("Range: %d, %q", resp.StatusCode, body)
	}
	resp, _, _ = do(t, "GET", url, "Range", "bytes=99999-")
	if resp.StatusCode != 416 {
		t.Errorf("unsatisfiable Range: %d, want 416", resp.StatusCode)
	}
	resp, body, _ = do(t, "GET", e.url+"/p2/acme/foo.json", "Accept-Encoding", "gzip")
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("gzip accepted but not used")
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(zr)
	_, direct, _ := do(t, "GET", e.url+"/p2/acme/foo.json", "Accept-Encoding", "identity")
	if !bytes.Equal(plain, direct) || !json.Valid(direct) {
		t.Errorf("gzip and plain bodies differ")
	}
}

func TestClientInputStaysInItsPrefix(t *testing.T) {
	e := newEnv(t, time.Minute)
	for _, p := range []string{
		"/p2/..%2f..%2fetc/passwd.json", "/p2/acme/..json", "/p2/acme/foo.txt",
		"/zipball/acme/foo/../../x/ref.zip", "/zipball/acme/foo/1.0.0.0/ref%2e%2e.zip",
		"/zipball/acme/foo/1.0.0.0/refZZ.zip", "/zipball/ACME/foo/1.0.0.0/ref.zip",
	} {
		resp, _, _ := do(t, "GET", e.url+p)
		if resp.StatusCode != 404 {
			t.Errorf("GET %s: %d, want 404", p, resp.StatusCode)
		}
	}
	if n := e.up.HitsPrefix("/dist/") + e.up.HitsPrefix("/p2/"); n != 0 {
		t.Errorf("invalid requests reached the upstream %d times", n)
	}
}

// With either server (h1's loop in front of net/http, or net/http alone).
func TestGracefulShutdownFinishesDownloads(t *testing.T) {
	for _, std := range []bool{false, true} {
		t.Run(fmt.Sprintf("std=%v", std), func(t *testing.T) { gracefulShutdown(t, std) })
	}
}

func gracefulShutdown(t *testing.T, std bool) {
	up := fakepackagist.New()
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	st, _ := local.New(t.TempDir())
	srv := proxy.New(proxy.Options{Store: st, MetaPrefix: "m", DistPrefix: "d",
		Mirrors: []proxy.Mirror{{Name: "p", Type: "composer", URL: up.URL(), TTL: time.Minute, NotFoundTTL: time.Second}},
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)), StdHTTP: std})
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, l, 20*time.Second) }()
	e := &env{up: up, store: st, url: "http://" + l.Addr().String() + "/p"}
	url := e.distURL(t, "acme/big", "1.0.0")
	up.SetDelay(time.Second)
	got := make(chan []byte, 1)
	go func() {
		_, body, err := do(t, "GET", url)
		if err != nil {
			body = nil
		}
		got <- body
	}()
	time.Sleep(300 * time.Millisecond)
	cancel() // SIGTERM
	if b := <-got; !bytes.Equal(b, up.Zip("acme/big", "1.0.0")) {
		t.Fatalf("an in-flight download did not finish during graceful shutdown (%d bytes)", len(b))
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		t.Fatal(err)
	}
	n := 0
	_ = st.List(context.Background(), "d/", func(storage.Info) error { n++; return nil })
	if n != 1 {
		t.Fatalf("the download finished during shutdown was not stored (%d objects)", n)
	}
}

// storageCalls sums mirror_storage_operations_total from /metrics.
func storageCalls(t *testing.T, base string) (total int, body string) {
	t.Helper()
	_, b, _ := do(t, "GET", base+"/metrics")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "mirror_storage_operations_total{") {
			f := strings.Fields(l)
			n, _ := strconv.Atoi(f[len(f)-1])
			total += n
		}
	}
	return total, string(b)
}

// Warm metadata hits make no storage call, and /metrics says so.
func TestWarmHitsMakeNoStorageCalls(t *testing.T) {
	e := newEnv(t, time.Hour)
	base := strings.TrimSuffix(e.url, "/packagist")
	for i := 0; i < 2; i++ {
		do(t, "GET", e.url+"/p2/acme/foo.json")
		do(t, "GET", e.url+"/packages.json")
	}
	before, _ := storageCalls(t, base)
	for i := 0; i < 100; i++ {
		do(t, "GET", e.url+"/p2/acme/foo.json", "Accept-Encoding", "gzip")
		do(t, "GET", e.url+"/packages.json")
	}
	after, m := storageCalls(t, base)
	if after != before {
		t.Errorf("200 warm requests made %d storage calls, want 0", after-before)
	}
	for _, want := range []string{`mirror_cache_lookups_total{mirror="packagist",result="hit",tier="memory"}`, `mirror_http_requests_total{method="GET",route="/packagist/p2/:vendor/:file",status="200"} 102`,
		`mirror_upstream_fetches_total{kind="metadata",mirror="packagist",result="ok"}`, "# TYPE mirror_storage_operations_total counter",
		`mirror_storage_operation_duration_seconds_count{op="put"}`, "mirror_http_requests_in_flight 1", // the scrape itself
		`mirror_http_request_duration_seconds_bucket{class="2xx",route="/packagist/p2/:vendor/:file",le="0.005"}`,
		`mirror_upstream_request_duration_seconds_count{mirror="packagist"}`, `mirror_http_response_bytes_total{route="/packagist/packages.json"}`,
		"go_goroutines", "process_resident_memory_bytes"} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s:\n%s", want, m)
		}
	}
}

// slowPut makes every storage write take a while to return, as an S3
// upload being aborted does.
type slowPut struct{ storage.Store }

func (s slowPut) Put(ctx context.Context, key string, r io.Reader, o storage.PutOptions) error {
	err := s.Store.Put(ctx, key, r, o)
	time.Sleep(500 * time.Millisecond)
	return err
}

// A request right after a failed download starts a new one; it does not
// join the failed one while its storage write is still unwinding.
func TestRequestAfterFailedDownloadTriesAgain(t *testing.T) {
	e := newEnvWith(t, time.Minute, func(o *proxy.Options) {
		o.Store = slowPut{o.Store}
		o.VerifyFailureTTL = fetch.Off // the failure is not remembered: this is about the flight
	})
	up := e.up
	url := e.distURL(t, "acme/foo", "1.1.0")
	up.Corrupt("acme/foo", "1.1.0", true)
	if resp, _, _ := do(t, "GET", url); resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("corrupt download: %d, want 502", resp.StatusCode)
	}
	up.Corrupt("acme/foo", "1.1.0", false)
	resp, body, err := do(t, "GET", url)
	if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, up.Zip("acme/foo", "1.1.0")) {
		t.Fatalf("right after a failed download, with the upstream fixed: %d %v", resp.StatusCode, err)
	}
}

// The absolute advisories URL in packages.json follows PUBLIC_URL when set,
// else the request's own host.
func TestAdvisoriesURLUsesPublicURL(t *testing.T) {
	for _, public := range []string{"", "https://mirror.example.com"} {
		e := newEnvWith(t, time.Minute, func(o *proxy.Options) { o.PublicURL = public })
		base := strings.TrimSuffix(e.url, "/packagist")
		_, body, _ := do(t, "GET", base+"/mirror/packagist/packages.json")
		want := base + "/mirror/packagist/api/security-advisories/"
		if public != "" {
			want = public + "/mirror/packagist/api/security-advisories/"
		}
		var root struct {
			SA struct {
				APIURL string `json:"api-url"`
			} `json:"security-advisories"`
		}
		json.Unmarshal(body, &root)
		if root.SA.APIURL != want {
			t.Errorf("PUBLIC_URL %q: api-url %q, want %q", public, root.SA.APIURL, want)
		}
	}
}

// A client that does not accept gzip gets the plain document, made once
// and kept (and counted) beside the gzip bytes, not decompressed per
// request.
func TestIdentityClientsGetKeptPlainBytes(t *testing.T) {
	e := newEnv(t, time.Minute)
	u := e.url + "/p2/acme/foo.json"
	resp, gz, _ := do(t, "GET", u, "Accept-Encoding", "gzip")
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("gzip client: %v", resp.Header)
	}
	zr, _ := gzip.NewReader(bytes.NewReader(gz))
	want, _ := io.ReadAll(zr)
	before := metricSum(t, e, "mirror_memory_cache_bytes")
	for i := 0; i < 3; i++ {
		resp, body, _ := do(t, "GET", u, "Accept-Encoding", "identity") // Go's client would ask for gzip itself
		if resp.Header.Get("Content-Encoding") != "" || !bytes.Equal(body, want) || resp.ContentLength != int64(len(want)) {
			t.Fatalf("identity client: %v, %d bytes", resp.Header, len(body))
		}
	}
	if grown := metricSum(t, e, "mirror_memory_cache_bytes") - before; grown != len(want) {
		t.Errorf("the kept plain bytes count %d in the memory budget, want %d", grown, len(want))
	}
	for _, page := range []string{e.url + "/packages.json"} {
		resp, body, _ := do(t, "GET", page, "Accept-Encoding", "identity")
		if resp.StatusCode != 200 || !json.Valid(body) {
			t.Errorf("%s without gzip: %d", page, resp.StatusCode)
		}
	}
}
