package proxy_test

import (
	"bytes"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/fakepypi"
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
	srv := proxy.New(proxy.Options{Store: st, MetaPrefix: "m", DistPrefix: "d",
		Mirrors: []proxy.Mirror{{Name: "pypi", Type: "pypi", URL: up.IndexURL(), TTL: 50 * time.Millisecond, NotFoundTTL: time.Second}},
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil))})
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	defer srv.Close()
	page := hs.URL + "/pypi/simple/dep-pkg/"
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
