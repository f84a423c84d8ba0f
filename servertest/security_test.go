package servertest_test

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	neturl "net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/hostile"
	"github.com/mirror-proxy/mirror-proxy/mirror/mirrortest"
	"github.com/mirror-proxy/mirror-proxy/proxy"
	"github.com/mirror-proxy/mirror-proxy/storage"
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
	opts  proxy.Options
}

// replica starts another proxy with the same options on the same storage
// (its memory empty) and returns its http://host:port.
func (e *hostileEnv) replica(t *testing.T) string {
	t.Helper()
	return mirrortest.ServeProxy(t, newServer(e.opts))
}

// newHostile starts a hostile upstream and a proxy with one mirror "m" of
// type typ whose URL is the upstream's plus path; mod adjusts the options.
func newHostile(t *testing.T, typ, path string, mod func(*proxy.Options)) *hostileEnv {
	t.Helper()
	up := startHostile(t)
	e := newProxy(t, t.TempDir(), typ, up.URL()+path, mod)
	e.up = up
	return e
}

// startHostile starts a hostile upstream on loopback for the test.
func startHostile(t testing.TB) *hostile.Server {
	t.Helper()
	up := hostile.New()
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(up.Stop)
	return up
}

// newProxy starts a proxy with one mirror "m" of type typ on upstream,
// storing in the local directory dir.
func newProxy(t *testing.T, dir, typ, upstream string, mod func(*proxy.Options)) *hostileEnv {
	t.Helper()
	st, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuf{}
	opts := proxy.Options{
		Store: st, MetaPrefix: "mirror-meta", DistPrefix: "mirror-dist",
		Mirrors:         []proxy.Mirror{{Name: "m", Type: typ, URL: upstream, TTL: time.Minute, NotFoundTTL: time.Second}},
		UpstreamTimeout: 3 * time.Second,
		Logger:          slog.New(slog.NewTextHandler(logs, nil)),
	}
	if mod != nil {
		mod(&opts)
	}
	srv := newServer(opts)
	hsURL := mirrortest.ServeProxy(t, srv)
	return &hostileEnv{store: st, srv: srv, base: hsURL, logs: logs, opts: opts}
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
		// Fetched, then from storage by a fresh replica: the stored page
		// must be servable too.
		for _, base := range []string{e.base, e.replica(t)} {
			resp, body, _ := do(t, "GET", base+page, "Accept", pypiJSON)
			if resp.StatusCode != 200 || !strings.Contains(string(body), "good-1.0.tar.gz") ||
				strings.Contains(string(body), "y-1.0") || strings.Contains(string(body), "bad-1.0") {
				t.Fatalf("%s: %d %s", page, resp.StatusCode, body)
			}
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
	inside := startHostile(t) // an internal service, on another port
	inside.Handle("/*", hostile.Bytes(makeZip(t, "secret.txt", "internal secret")))
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
			// Listed, the internal service is asked; it answers a zip,
			// not the API's JSON: a 502 either way, never its bytes.
			seen := len(inside.Seen())
			resp, body, _ := doBody(t, "POST", e.base+"/m/api/security-advisories/", "packages[]=a/b", "Content-Type", "application/x-www-form-urlencoded")
			if asked := len(inside.Seen()) > seen; tc.allowed != asked || resp.StatusCode != http.StatusBadGateway || bytes.Contains(body, []byte("secret")) {
				t.Errorf("advisories POST to an internal api-url: asked %v, %d %s", asked, resp.StatusCode, body)
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

	// An HTTP/1.0 probe without a Host header is still answered.
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(conn, "GET /healthz HTTP/1.0\r\n\r\n")
	status, _ := bufio.NewReader(conn).ReadString('\n')
	conn.Close()
	if !strings.Contains(status, " 200 ") {
		t.Errorf("HTTP/1.0 without Host: %q", status)
	}

	for _, host := range []string{strings.Repeat("h", 5000) + ".example", "a_b..c:99999999", "[zz]"} {
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
// it); how many are kept is bounded (mirror/composer's
// TestRenderedRootsAreBounded).
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

// makeZip is a zip holding one file.
func makeZip(t testing.TB, name, content string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create(name)
	io.WriteString(w, content)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// storedKeys lists what the proxy stored under prefix (uploads end just
// after the response: a short wait lets them land).
func storedKeys(t testing.TB, st storage.Store, prefix string) []string {
	t.Helper()
	time.Sleep(100 * time.Millisecond)
	var keys []string
	_ = st.List(context.Background(), prefix, func(i storage.Info) error { keys = append(keys, i.Key); return nil })
	return keys
}

// Files larger than the metadata says, or than MAX_FILE_BYTES when it
// says nothing, are refused and never stored.
func TestOversizedFilesAreRefused(t *testing.T) {
	t.Run("pypi size", func(t *testing.T) {
		e := newHostile(t, "pypi", "/simple", nil)
		e.up.Handle("/simple/p/", hostile.Body(pypiJSON, `{"meta":{"api-version":"1.1"},"name":"p","files":[
		  {"filename":"p-1.0.tar.gz","url":"/f/p-1.0.tar.gz","hashes":{},"size":100}]}`))
		e.up.Handle("/f/p-1.0.tar.gz", hostile.Bytes(bytes.Repeat([]byte("x"), 200)))
		_, page, _ := do(t, "GET", e.base+"/m/simple/p/", "Accept", pypiJSON)
		var doc struct{ Files []struct{ URL string } }
		if err := json.Unmarshal(page, &doc); err != nil || len(doc.Files) != 1 {
			t.Fatalf("page: %v %s", err, page)
		}
		pageURL, _ := neturl.Parse(e.base + "/m/simple/p/")
		fileURL, _ := pageURL.Parse(doc.Files[0].URL)
		resp, body, _ := do(t, "GET", fileURL.String())
		if resp.StatusCode != http.StatusBadGateway {
			t.Errorf("a 200-byte file listed with size 100: %d %q", resp.StatusCode, body)
		}
		if k := storedKeys(t, e.store, "mirror-dist/"); len(k) != 0 {
			t.Errorf("stored: %v", k)
		}
	})
	t.Run("endless body", func(t *testing.T) {
		e := newHostile(t, "composer", "", func(o *proxy.Options) { o.MaxFileBytes = 4 << 20 })
		e.up.Handle("/packages.json", hostile.Body("application/json", composerRoot))
		e.up.Handle("/p2/a/endless.json", hostile.Body("application/json", p2JSON("a/endless", e.up.URL()+"/dl/endless.zip", "")))
		e.up.Handle("/dl/endless.zip", hostile.Endless())
		resp, body, err := do(t, "GET", e.base+"/m/zipball/a/endless/1.0.0.0/refabc.zip")
		if err == nil && resp.StatusCode == 200 {
			t.Errorf("an endless body was served cleanly (%d bytes)", len(body))
		}
		if k := storedKeys(t, e.store, "mirror-dist/"); len(k) != 0 {
			t.Errorf("stored: %v", k)
		}
	})
}

// A download every client has left stops, unless it is nearly done.
func TestAbandonedDownloadStops(t *testing.T) {
	e := newHostile(t, "composer", "", nil)
	e.up.Handle("/packages.json", hostile.Body("application/json", composerRoot))
	e.up.Handle("/p2/a/slow.json", hostile.Body("application/json", p2JSON("a/slow", e.up.URL()+"/dl/slow.zip", "")))
	gone := make(chan struct{})
	e.up.Handle("/dl/slow.zip", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(20<<20))
		w.Write(make([]byte, 2<<20))
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
			close(gone)
		case <-time.After(20 * time.Second):
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", e.base+"/m/zipball/a/slow/1.0.0.0/refabc.zip", nil)
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadFull(resp.Body, make([]byte, 1<<20))
	cancel()
	resp.Body.Close()
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatalf("the upstream download went on after its only client left at 10%%")
	}
}

// A dist URL naming a known reference with another version segment or
// type is redirected to the canonical URL: one stored copy per dist.
func TestDistURLVariantsAreRedirected(t *testing.T) {
	e := newEnv(t, time.Minute)
	canon := e.distURL(t, "acme/foo", "1.1.0")
	i := strings.Index(canon, "/1.1.0.0/")
	for _, variant := range []string{canon[:i] + "/junk1/" + canon[i+len("/1.1.0.0/"):], canon[:i] + "/junk2/" + canon[i+len("/1.1.0.0/"):],
		strings.TrimSuffix(canon, ".zip") + ".tar"} {
		resp, _, _ := do(t, "GET", variant)
		if resp.StatusCode != http.StatusMovedPermanently || !strings.HasSuffix(canon, resp.Header.Get("Location")) {
			t.Errorf("%s: %d → %q, want 301 to %s", variant, resp.StatusCode, resp.Header.Get("Location"), canon)
		}
	}
	if resp, _, _ := do(t, "GET", canon); resp.StatusCode != 200 {
		t.Fatalf("canonical: %d", resp.StatusCode)
	}
	if k := storedKeys(t, e.store, "mirror-dist/"); len(k) != 1 {
		t.Errorf("stored %v, want the one canonical dist", k)
	}
}

// A dist without a shasum is stored only when it is a complete, intact
// archive; a HEAD of a cold file answers only once the file is verified.
func TestUnverifiableDistsAreCheckedAsArchives(t *testing.T) {
	e := newHostile(t, "composer", "", nil)
	good := makeZip(t, "a.txt", strings.Repeat("content ", 200000))
	bad := append([]byte{}, good...)
	bad[len(bad)/3] ^= 0xff // same length, damaged data
	big := bytes.Repeat([]byte("y"), 3<<20)
	e.up.Handle("/packages.json", hostile.Body("application/json", composerRoot))
	e.up.Handle("/p2/a/bad.json", hostile.Body("application/json", p2JSON("a/bad", e.up.URL()+"/dl/bad.zip", "")))
	e.up.Handle("/p2/a/cut.json", hostile.Body("application/json", p2JSON("a/cut", e.up.URL()+"/dl/cut.zip", "")))
	e.up.Handle("/p2/a/good.json", hostile.Body("application/json", p2JSON("a/good", e.up.URL()+"/dl/good.zip", "")))
	e.up.Handle("/p2/a/big.json", hostile.Body("application/json", p2JSON("a/big", e.up.URL()+"/dl/big.zip", strings.Repeat("0", 40))))
	e.up.Handle("/dl/bad.zip", hostile.Bytes(bad))
	e.up.Handle("/dl/cut.zip", hostile.Bytes(good[:len(good)-30]))
	e.up.Handle("/dl/good.zip", hostile.Bytes(good))
	e.up.Handle("/dl/big.zip", hostile.Bytes(big))
	for _, pkg := range []string{"a/bad", "a/cut"} {
		resp, body, err := do(t, "GET", e.base+"/m/zipball/"+pkg+"/1.0.0.0/refabc.zip")
		if err == nil && resp.StatusCode == 200 && len(body) == int(resp.ContentLength) {
			t.Errorf("%s: a damaged archive was served cleanly", pkg)
		}
	}
	if resp, body, _ := do(t, "GET", e.base+"/m/zipball/a/good/1.0.0.0/refabc.zip"); resp.StatusCode != 200 || !bytes.Equal(body, good) {
		t.Errorf("good archive: %d", resp.StatusCode)
	}
	if resp, _, _ := do(t, "HEAD", e.base+"/m/zipball/a/big/1.0.0.0/refabc.zip"); resp.StatusCode != http.StatusBadGateway {
		t.Errorf("HEAD of a cold file with a wrong sha1: %d, want 502", resp.StatusCode)
	}
	if k := storedKeys(t, e.store, "mirror-dist/"); len(k) != 1 || !strings.Contains(k[0], "a/good") {
		t.Errorf("stored %v, want only the good archive", k)
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func sha1hex(b []byte) string { s := sha1.Sum(b); return hex.EncodeToString(s[:]) }

// When the upstream changes the shasum of a version and reference, the
// stored copy is dropped, and the next request gets the bytes the
// metadata now vouches for.
func TestChangedShasumDropsTheStoredDist(t *testing.T) {
	e := newHostile(t, "composer", "", func(o *proxy.Options) { o.Mirrors[0].TTL = 100 * time.Millisecond })
	first, second := makeZip(t, "a.txt", "first"), makeZip(t, "a.txt", "second, re-tagged")
	var mu sync.Mutex
	current := first
	e.up.Handle("/packages.json", hostile.Body("application/json", composerRoot))
	e.up.Handle("/p2/a/retag.json", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, p2JSON("a/retag", e.up.URL()+"/dl/retag.zip", sha1hex(current)))
	})
	e.up.Handle("/dl/retag.zip", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.Write(current)
	})
	url := e.base + "/m/zipball/a/retag/1.0.0.0/refabc.zip"
	if resp, body, _ := do(t, "GET", url); resp.StatusCode != 200 || !bytes.Equal(body, first) {
		t.Fatalf("first: %d", resp.StatusCode)
	}
	time.Sleep(100 * time.Millisecond) // stored
	mu.Lock()
	current = second
	mu.Unlock()
	time.Sleep(150 * time.Millisecond) // the metadata expires
	do(t, "GET", e.base+"/m/p2/a/retag.json")
	if resp, body, _ := do(t, "GET", url); resp.StatusCode != 200 || !bytes.Equal(body, second) {
		t.Errorf("after the upstream changed the shasum: %d, %q", resp.StatusCode, body)
	}
}

// A request whose body arrived in time is not cut when its handler takes
// longer than the body deadline (the advisories POST waits on the
// upstream).
func TestBodyDeadlineIsLiftedOnceTheBodyArrived(t *testing.T) {
	e := newHostile(t, "composer", "", func(o *proxy.Options) { o.BodyReadTimeout = 200 * time.Millisecond })
	root := strings.Replace(composerRoot, "API", e.up.URL()+"/api", 1)
	e.up.Handle("/packages.json", hostile.Body("application/json", root))
	e.up.Handle("/api", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(600 * time.Millisecond)
		io.WriteString(w, `{"advisories":{}}`)
	})
	do(t, "GET", e.base+"/m/packages.json")
	resp, body, err := doBody(t, "POST", e.base+"/m/api/security-advisories/", "packages[]=a/b", "Content-Type", "application/x-www-form-urlencoded")
	if err != nil || resp.StatusCode != 200 || !strings.Contains(string(body), "advisories") {
		t.Errorf("a slow upstream answer to a quick body: %d %v %s", resp.StatusCode, err, body)
	}
}

// Behind a load balancer on a private address, the client's address
// comes from X-Forwarded-For and its scheme from X-Forwarded-Proto.
func TestForwardedHeadersFromALoadBalancer(t *testing.T) {
	logs := &logBuf{}
	e := newEnvWith(t, time.Minute, func(o *proxy.Options) { o.Logger = slog.New(slog.NewTextHandler(logs, nil)) })
	_, body, _ := do(t, "GET", e.url+"/packages.json", "X-Forwarded-For", "203.0.113.9", "X-Forwarded-Proto", "https")
	if !strings.Contains(string(body), `"api-url":"https://`) {
		t.Errorf("X-Forwarded-Proto from a private address is not honoured: %s", body)
	}
	if !strings.Contains(logs.String(), "remote=203.0.113.9") {
		t.Errorf("the log does not name the client behind the balancer:\n%s", logs.String())
	}
}
