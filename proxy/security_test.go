package proxy_test

import (
	"log/slog"
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
