package servertest_test

import (
	"bytes"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/fakepypi"
	"github.com/mirror-proxy/mirror-proxy/mirror/mirrortest"
	"github.com/mirror-proxy/mirror-proxy/proxy"
	"github.com/mirror-proxy/mirror-proxy/storage/local"
)

// A page from an upstream node with an older X-PyPI-Last-Serial (a stale
// CDN node) never replaces the stored one; a newer one does.
func TestOlderSerialNeverReplacesAPage(t *testing.T) {
	up := fakepypi.New(false)
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	st, _ := local.New(t.TempDir())
	srv := newServer(proxy.Options{Store: st, MetaPrefix: "m", DistPrefix: "d",
		Mirrors: []proxy.Mirror{{Name: "pypi", Type: "pypi", URL: up.IndexURL(), TTL: 50 * time.Millisecond, NotFoundTTL: time.Second}},
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil))})
	hsURL := mirrortest.ServeProxy(t, srv)
	page := hsURL + "/pypi/simple/dep-pkg/"
	up.SetSerial("dep-pkg", 500)
	if resp, _, _ := do(t, "GET", page); resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	up.Publish("dep-pkg", fakepypi.Release{Version: "3.0"})
	up.SetSerial("dep-pkg", 400) // the new page comes with an older serial
	time.Sleep(100 * time.Millisecond)
	_, body, _ := do(t, "GET", page)
	if bytes.Contains(body, []byte("dep_pkg-3.0")) {
		t.Fatalf("a page with an older serial replaced the stored one")
	}
	up.SetSerial("dep-pkg", 600)
	time.Sleep(100 * time.Millisecond)
	_, body, _ = do(t, "GET", page)
	if !bytes.Contains(body, []byte("dep_pkg-3.0")) {
		t.Fatalf("a page with a newer serial was not taken")
	}
}

// An HTML-only upstream's pages get their name from the request; a 404
// names the upstream URL that answered (a mirror URL without /simple).
func TestHTMLUpstreamNamesAndUpstream404(t *testing.T) {
	up := fakepypi.New(true)
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	st, _ := local.New(t.TempDir())
	srv := newServer(proxy.Options{Store: st, MetaPrefix: "m", DistPrefix: "d",
		Mirrors: []proxy.Mirror{
			{Name: "pypi", Type: "pypi", URL: up.IndexURL(), TTL: time.Minute, NotFoundTTL: time.Second},
			{Name: "nosimple", Type: "pypi", URL: strings.TrimSuffix(up.IndexURL(), "/simple"), TTL: time.Minute, NotFoundTTL: time.Second},
		},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	hsURL := mirrortest.ServeProxy(t, srv)
	_, body, _ := do(t, "GET", hsURL+"/pypi/simple/dep-pkg/", "Accept", "application/vnd.pypi.simple.v1+json")
	if !strings.Contains(string(body), `"name":"dep-pkg"`) {
		t.Errorf("JSON from an HTML upstream: %s", body)
	}
	_, body, _ = do(t, "GET", hsURL+"/pypi/simple/dep-pkg/", "Accept", "text/html")
	if !strings.Contains(string(body), "<title>Links for dep-pkg</title>") {
		t.Errorf("HTML from an HTML upstream: %s", body)
	}
	resp, body, _ := do(t, "GET", hsURL+"/nosimple/simple/dep-pkg/")
	if resp.StatusCode != 404 || !strings.Contains(string(body), up.Addr()+"/dep-pkg/") {
		t.Errorf("a mirror URL without /simple: %d %s, want a 404 naming the upstream URL", resp.StatusCode, body)
	}
}
