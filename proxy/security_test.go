package proxy_test

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/hostile"
	"github.com/mirror-proxy/mirror-proxy/proxy"
	"github.com/mirror-proxy/mirror-proxy/storage/local"
)

// logBuf collects what the proxy logs, to check that secrets stay out.
type logBuf struct {
	mu sync.Mutex
	sb strings.Builder
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sb.Write(p)
}

func (l *logBuf) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.sb.String() }

// hostileEnv is a proxy in front of a scriptable malicious upstream.
type hostileEnv struct {
	up    *hostile.Server
	store *local.Store
	srv   *proxy.Server
	base  string // the proxy's http://host:port
	logs  *logBuf
}

// newHostile starts a hostile upstream and a proxy with one mirror "m" of
// type typ whose URL is the upstream's plus path; mod adjusts the options.
func newHostile(t *testing.T, typ, path string, mod func(*proxy.Options)) *hostileEnv {
	t.Helper()
	up := hostile.New()
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(up.Stop)
	st, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuf{}
	opts := proxy.Options{
		Store: st, MetaPrefix: "mirror-meta", DistPrefix: "mirror-dist",
		Mirrors:         []proxy.Mirror{{Name: "m", Type: typ, URL: up.URL() + path, TTL: time.Minute, NotFoundTTL: time.Second}},
		UpstreamTimeout: 3 * time.Second,
		Logger:          slog.New(slog.NewTextHandler(logs, nil)),
	}
	if mod != nil {
		mod(&opts)
	}
	srv := proxy.New(opts)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { hs.Close(); srv.Close() })
	return &hostileEnv{up: up, store: st, srv: srv, base: hs.URL, logs: logs}
}

const pypiJSON = "application/vnd.pypi.simple.v1+json"

// Markup in an upstream's hashes and names never becomes markup in the
// proxy's pages; hashes that are not hex of the right length are dropped.
func TestHostileAttributesAreNeverMarkup(t *testing.T) {
	e := newHostile(t, "pypi", "/simple", nil)
	evil := `\"><script>alert(1)</script>`
	e.up.Handle("/simple/evil/", hostile.Body(pypiJSON, `{"meta":{"api-version":"1.1"},"name":"evil","files":[
	  {"filename":"evil-1.0.tar.gz","url":"/f/evil-1.0.tar.gz","hashes":{"sha256":"`+evil+`"},"core-metadata":{"sha256":"`+evil+`"}},
	  {"filename":"evil-2.0.tar.gz","url":"/f/evil-2.0.tar.gz","hashes":{},"core-metadata":{"sha256":"`+strings.Repeat("ab", 32)+`"}}]}`))
	e.up.Handle("/simple/evilhtml/", hostile.Body("text/html", `<a href="/f/x-1.0.tar.gz#sha256=`+strings.Repeat("a", 64)+
		`" data-core-metadata="sha256=&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;">x-1.0.tar.gz</a>`))
	e.up.Handle("/simple/", hostile.Body("text/html", `<a href="javascript:alert(1)/">javascript:alert(1)</a><a href="ok/">ok</a><a href="x">"><img src=x onerror=alert(1)></a>`))
	for _, page := range []string{"/m/simple/evil/", "/m/simple/evilhtml/", "/m/simple/"} {
		for _, accept := range []string{"text/html", pypiJSON} {
			resp, body, _ := do(t, "GET", e.base+page, "Accept", accept)
			if resp.StatusCode != 200 {
				t.Fatalf("%s (%s): %d %s", page, accept, resp.StatusCode, body)
			}
			for _, bad := range []string{"<script", "<img", "javascript:", "onerror"} {
				if strings.Contains(strings.ToLower(string(body)), bad) {
					t.Errorf("%s (%s) carries %q from the upstream:\n%s", page, accept, bad, body)
				}
			}
		}
	}
	_, body, _ := do(t, "GET", e.base+"/m/simple/evil/", "Accept", "text/html")
	if !strings.Contains(string(body), `data-core-metadata="sha256=`+strings.Repeat("ab", 32)+`"`) {
		t.Errorf("a valid metadata hash was lost:\n%s", body)
	}
	_, body, _ = do(t, "GET", e.base+"/m/simple/", "Accept", "text/html")
	if !strings.Contains(string(body), `href="ok/"`) {
		t.Errorf("a valid project name was lost:\n%s", body)
	}
}

// An upstream page with entries the proxy cannot serve (a link without a
// file name, a non-http URL) keeps its other files, and the page keeps
// working after a revalidation.
func TestUnusableLinksAreSkippedNotFatal(t *testing.T) {
	e := newHostile(t, "pypi", "/simple", nil)
	e.up.Handle("/simple/html/", hostile.Body("text/html", `<a href="/f/">   </a><a href="ftp://x/y-1.0.tar.gz">y-1.0.tar.gz</a><a href="/f/good-1.0.tar.gz">good-1.0.tar.gz</a>`))
	e.up.Handle("/simple/json/", hostile.Body(pypiJSON, `{"meta":{"api-version":"1.0"},"name":"json","files":[
	  {"filename":"bad-1.0.tar.gz","url":"file:///etc/passwd","hashes":{}},
	  {"filename":"","url":"/f/x","hashes":{}},
	  {"filename":"good-1.0.tar.gz","url":"/f/good-1.0.tar.gz","hashes":{}}]}`))
	for _, page := range []string{"/m/simple/html/", "/m/simple/json/"} {
		for i := 0; i < 2; i++ {
			resp, body, _ := do(t, "GET", e.base+page, "Accept", pypiJSON)
			if resp.StatusCode != 200 || !strings.Contains(string(body), "good-1.0.tar.gz") ||
				strings.Contains(string(body), "y-1.0") || strings.Contains(string(body), "bad-1.0") {
				t.Fatalf("%s: %d %s", page, resp.StatusCode, body)
			}
			e.srv.ExpireMemory() // the stored page must be servable too
		}
	}
}

// p2JSON is a p2 file of name with one version whose dist is at url.
func p2JSON(name, url, shasum string) string {
	return `{"packages":{"` + name + `":[{"name":"` + name + `","version":"1.0.0","version_normalized":"1.0.0.0",
	  "dist":{"type":"zip","url":"` + url + `","reference":"abc","shasum":"` + shasum + `"}}]}}`
}

const composerRoot = `{"packages":[],"metadata-url":"/p2/%package%.json","security-advisories":{"metadata":true,"api-url":"API"}}`

// The proxy fetches files only from the mirror's own host and the hosts
// its configuration allows, on every redirect hop; a host other than the
// mirror's never reaches a loopback or private address unless listed.
func TestFileURLsCannotReachInternalHosts(t *testing.T) {
	inside := hostile.New() // an internal service, on another port
	if err := inside.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer inside.Stop()
	inside.Handle("/*", hostile.Body("application/zip", "internal secret"))
	_, port, _ := strings.Cut(inside.Addr(), ":")
	for _, tc := range []struct {
		name, fileHosts string
		allowed         bool
	}{
		{"default", "", false},
		{"any public host", "*", false},
		{"listed by the operator", "localhost", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newHostile(t, "composer", "", func(o *proxy.Options) {
				if tc.fileHosts != "" {
					o.Mirrors[0].FileHosts = []string{tc.fileHosts}
				}
			})
			root := strings.Replace(composerRoot, "API", "http://localhost:"+port+"/api", 1)
			e.up.Handle("/packages.json", hostile.Body("application/json", root))
			e.up.Handle("/p2/a/direct.json", hostile.Body("application/json", p2JSON("a/direct", "http://localhost:"+port+"/x.zip", "")))
			e.up.Handle("/p2/a/meta.json", hostile.Body("application/json", p2JSON("a/meta", "http://169.254.169.254/latest/meta-data/", "")))
			e.up.Handle("/p2/a/redir.json", hostile.Body("application/json", p2JSON("a/redir", e.up.URL()+"/dl/x.zip", "")))
			e.up.Handle("/dl/x.zip", hostile.Redirect("http://localhost:"+port+"/x.zip"))
			for _, pkg := range []string{"a/direct", "a/redir"} {
				resp, body, _ := do(t, "GET", e.base+"/m/zipball/"+pkg+"/1.0.0.0/refabc.zip")
				if tc.allowed != (resp.StatusCode == 200) || (!tc.allowed && resp.StatusCode != http.StatusBadGateway) {
					t.Errorf("%s: %d %s", pkg, resp.StatusCode, body)
				}
			}
			if resp, body, _ := do(t, "GET", e.base+"/m/zipball/a/meta/1.0.0.0/refabc.zip"); resp.StatusCode != http.StatusBadGateway {
				t.Errorf("cloud metadata address: %d %s", resp.StatusCode, body)
			}
			resp, body, _ := doBody(t, "POST", e.base+"/m/api/security-advisories/", "packages[]=a/b", "Content-Type", "application/x-www-form-urlencoded")
			if tc.allowed != (resp.StatusCode == 200) {
				t.Errorf("advisories POST to an internal api-url: %d %s", resp.StatusCode, body)
			}
			if !tc.allowed && len(inside.Seen()) > 0 {
				t.Errorf("the internal service was reached: %+v", inside.Seen())
			}
		})
	}
}

// A password written into the mirror URL is sent to the upstream and
// appears nowhere else: not in logs, not in error bodies.
func TestUserinfoNeverLeaks(t *testing.T) {
	e := newHostile(t, "composer", "", func(o *proxy.Options) {
		o.Mirrors[0].URL = strings.Replace(o.Mirrors[0].URL, "http://", "http://user:hunter2@", 1)
	})
	e.up.Handle("/packages.json", hostile.Body("application/json", composerRoot))
	e.up.Handle("/p2/a/fails.json", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", 500) })
	resp, body, _ := do(t, "GET", e.base+"/m/p2/a/fails.json")
	if resp.StatusCode != http.StatusBadGateway || strings.Contains(string(body), "hunter2") {
		t.Errorf("upstream failure: %d %s", resp.StatusCode, body)
	}
	e.up.Stop()
	resp, body, _ = do(t, "GET", e.base+"/m/p2/a/other.json")
	if resp.StatusCode < 500 || strings.Contains(string(body), "hunter2") {
		t.Errorf("upstream down: %d %s", resp.StatusCode, body)
	}
	if strings.Contains(e.logs.String(), "hunter2") {
		t.Errorf("the password is in the log:\n%s", e.logs.String())
	}
	seen := e.up.Seen()
	if len(seen) == 0 || seen[0].Authorization == "" {
		t.Errorf("the upstream got no credential: %+v", seen)
	}
}

func doBody(t testing.TB, method, url, body string, hdr ...string) (*http.Response, []byte, error) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// Hostile clients: unknown methods, odd and huge Host headers, long names
// and request ids get short, bounded answers and leave no trace that
// grows.
func TestHostileClientsGetBoundedAnswers(t *testing.T) {
	e := newEnv(t, time.Minute)
	base := strings.TrimSuffix(e.url, "/packagist")
	for i := 0; i < 50; i++ {
		resp, _, _ := do(t, fmt.Sprintf("M%03d", i), e.url+"/packages.json")
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("unknown method: %d", resp.StatusCode)
		}
	}
	_, metrics, _ := do(t, "GET", base+"/metrics")
	if strings.Contains(string(metrics), "M001") || !strings.Contains(string(metrics), `method="other"`) {
		t.Errorf("unknown methods in the metrics:\n%s", metrics)
	}

	long := strings.Repeat("a", 10000)
	for _, u := range []string{e.url + "/p2/" + long + "/x.json", base + "/m/simple/" + long + "/"} {
		resp, body, _ := do(t, "GET", u)
		if resp.StatusCode != 404 || len(body) > 1200 {
			t.Errorf("long name: %d, %d bytes echoed", resp.StatusCode, len(body))
		}
	}

	resp, _, _ := do(t, "GET", e.url+"/packages.json", "X-Request-Id", strings.Repeat("x", 100000))
	if id := resp.Header.Get("X-Request-Id"); len(id) > 128 || id == "" {
		t.Errorf("a 100 KB request id came back (%d bytes)", len(id))
	}
	resp, _, _ = do(t, "GET", e.url+"/packages.json", "X-Request-Id", "abc <def> \" x")
	if id := resp.Header.Get("X-Request-Id"); strings.ContainsAny(id, " <\"") {
		t.Errorf("a control character in the request id came back: %q", id)
	}
	resp, _, _ = do(t, "GET", e.url+"/packages.json", "X-Request-Id", "trace-42")
	if id := resp.Header.Get("X-Request-Id"); id != "trace-42" {
		t.Errorf("a sane request id was not kept: %q", id)
	}

	for _, host := range []string{strings.Repeat("h", 5000) + ".example", "a b", "x\"y"} {
		req, _ := http.NewRequest("GET", e.url+"/packages.json", nil)
		req.Host = host
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("Host %.20q...: %d, want 400", host, resp.StatusCode)
		}
	}
}

// Every distinct Host renders its own root (its advisories URL names
// it), but only a bounded number are kept.
func TestManyHostsKeepBoundedRoots(t *testing.T) {
	e := newEnv(t, time.Minute)
	for i := 0; i < 200; i++ {
		req, _ := http.NewRequest("GET", e.url+"/packages.json", nil)
		req.Host = fmt.Sprintf("host%d.example", i)
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), req.Host) {
			t.Fatalf("host %d: %d %s", i, resp.StatusCode, body)
		}
	}
	if n := e.srv.RenderedRoots("packagist"); n > 16 {
		t.Errorf("200 Host headers left %d rendered roots in memory", n)
	}
}

// A request body that trickles in is cut off after BodyReadTimeout.
func TestSlowRequestBodiesAreCutOff(t *testing.T) {
	e := newEnvWith(t, time.Minute, func(o *proxy.Options) { o.BodyReadTimeout = 300 * time.Millisecond })
	addr := strings.TrimPrefix(strings.TrimSuffix(e.url, "/packagist"), "http://")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /packagist/api/security-advisories/ HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\npackages[]=", addr)
	start := time.Now()
	closed := make(chan struct{})
	go func() {
		io.Copy(io.Discard, conn)
		close(closed)
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-closed:
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("a trickling body held the connection for %v", d)
			}
			return
		case <-tick.C:
			conn.Write([]byte("a"))
			if time.Since(start) > 5*time.Second {
				t.Fatalf("a trickling body still holds the connection after 5 s")
			}
		}
	}
}

// A gzip bomb costs at most MAX_METADATA_BYTES of memory, answers 502,
// and is not refetched by the next requests.
func TestGzipBombIsBoundedAndNotRefetched(t *testing.T) {
	e := newHostile(t, "composer", "", func(o *proxy.Options) { o.MaxMetadataBytes = 1 << 20 })
	e.up.Handle("/packages.json", hostile.Body("application/json", composerRoot))
	e.up.Handle("/p2/*", hostile.GzipBomb("application/json", 200<<20))
	do(t, "GET", e.base+"/m/packages.json")
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < 3; i++ {
		resp, body, _ := do(t, "GET", e.base+"/m/p2/a/bomb.json")
		if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "MAX_METADATA_BYTES") {
			t.Fatalf("gzip bomb: %d %s", resp.StatusCode, body)
		}
	}
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 32<<20 {
		t.Errorf("a 200 MB gzip bomb cost %d MB of allocations", alloc>>20)
	}
	if n := e.up.HitsPrefix("/p2/"); n != 1 {
		t.Errorf("the refused document was fetched %d times, want once", n)
	}
}

// The memory cache's budget counts the indexes built from documents, not
// only the stored bytes.
func TestMemoryBudgetCountsParsedPages(t *testing.T) {
	e := newHostile(t, "pypi", "/simple", func(o *proxy.Options) { o.MemoryCacheBytes = 2 << 20 })
	e.up.Handle("/simple/*", func(w http.ResponseWriter, r *http.Request) {
		name := strings.Trim(strings.TrimPrefix(r.URL.Path, "/simple/"), "/")
		var sb strings.Builder
		sb.WriteString(`{"meta":{"api-version":"1.1"},"name":"` + name + `","files":[`)
		for i := 0; i < 3000; i++ {
			if i > 0 {
				sb.WriteByte(',')
			}
			fmt.Fprintf(&sb, `{"filename":"%s-%d.0.tar.gz","url":"/f/%s-%d.0.tar.gz","hashes":{"sha256":"%064x"},"size":%d,"upload-time":"2024-01-01T00:00:00Z"}`,
				name, i, name, i, i*7919+len(name), i)
		}
		sb.WriteString("]}")
		w.Header().Set("Content-Type", pypiJSON)
		io.WriteString(w, sb.String())
	})
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < 30; i++ {
		resp, _, _ := do(t, "GET", fmt.Sprintf("%s/m/simple/p%d/", e.base, i), "Accept", pypiJSON)
		if resp.StatusCode != 200 {
			t.Fatalf("page %d: %d", i, resp.StatusCode)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 24<<20 {
		t.Errorf("a 2 MiB memory cache retains %d MB after 30 large pages", grown>>20)
	}
}
