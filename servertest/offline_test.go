package servertest_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/fakepypi"
	"github.com/mirror-proxy/mirror-proxy/mirror/mirrortest"
	"github.com/mirror-proxy/mirror-proxy/proxy"
	"github.com/mirror-proxy/mirror-proxy/storage/local"
)

// An offline mirror serves what storage holds and never asks its
// upstream; what storage does not hold is a 404 that says why.
func TestOfflineMirrorServesStorageOnly(t *testing.T) {
	up := fakepypi.New(false)
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	st, _ := local.New(t.TempDir())
	start := func(offline bool) string {
		srv := newServer(proxy.Options{Store: st, MetaPrefix: "mirror-meta", DistPrefix: "mirror-dist",
			Mirrors:         []proxy.Mirror{{Name: "pypi", Type: "pypi", URL: up.IndexURL(), TTL: time.Nanosecond, NotFoundTTL: time.Second, Offline: offline}},
			UpstreamTimeout: 5 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		hsURL := mirrortest.ServeProxy(t, srv)
		return hsURL + "/pypi"
	}
	online := start(false)
	_, page, _ := do(t, "GET", online+"/simple/dep-pkg/", "Accept", "application/vnd.pypi.simple.v1+json")
	var doc struct {
		Files []struct{ URL string } `json:"files"`
	}
	if err := json.Unmarshal(page, &doc); err != nil || len(doc.Files) == 0 {
		t.Fatalf("page: %v %s", err, page)
	}
	base, _ := url.Parse(online + "/simple/dep-pkg/")
	ref, _ := url.Parse(doc.Files[0].URL)
	file := base.ResolveReference(ref).Path
	if resp, _, _ := do(t, "GET", online[:strings.Index(online, "/pypi")]+file); resp.StatusCode != 200 {
		t.Fatalf("file: %d", resp.StatusCode)
	}
	time.Sleep(200 * time.Millisecond) // the commit follows the response

	offline := start(true)
	host := offline[:strings.Index(offline, "/pypi")]
	before := up.HitsPrefix("/")
	if resp, b, _ := do(t, "GET", offline+"/simple/dep-pkg/", "Accept", "application/vnd.pypi.simple.v1+json"); resp.StatusCode != 200 || len(b) == 0 {
		t.Errorf("stored page, offline: %d", resp.StatusCode)
	}
	if resp, _, _ := do(t, "GET", host+file); resp.StatusCode != 200 {
		t.Errorf("stored file, offline: %d", resp.StatusCode)
	}
	resp, b, _ := do(t, "GET", offline+"/simple/foo-bar/")
	if resp.StatusCode != 404 || !strings.Contains(string(b), "offline") {
		t.Errorf("a project not in storage, offline: %d %s", resp.StatusCode, b)
	}
	if n := up.HitsPrefix("/") - before; n != 0 {
		t.Errorf("the offline mirror made %d upstream requests", n)
	}
}
