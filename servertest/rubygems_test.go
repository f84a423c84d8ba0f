package servertest_test

import (
	"crypto/md5"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/fakerubygems"
	"github.com/mirror-proxy/mirror-proxy/mirror/mirrortest"
	"github.com/mirror-proxy/mirror-proxy/proxy"
	"github.com/mirror-proxy/mirror-proxy/storage/local"
)

// The compact index as Bundler reads it: the ETag is the quoted MD5 of the
// whole document, If-None-Match with it is a 304, and a Range request for
// what follows a copy is a 206 of that part.
func TestCompactIndexETagsAndRanges(t *testing.T) {
	up := fakerubygems.New()
	up.Publish(fakerubygems.Gem{Name: "rack", Version: "3.0.0", Bytes: []byte("a gem")})
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	st, _ := local.New(t.TempDir())
	srv := newServer(proxy.Options{Store: st, MetaPrefix: "mirror-meta", DistPrefix: "mirror-dist",
		Mirrors: []proxy.Mirror{{Name: "rubygems", Type: "rubygems", URL: up.URL(), TTL: time.Minute, NotFoundTTL: time.Second}},
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil))})
	base := mirrortest.ServeProxy(t, srv) + "/rubygems"
	for _, doc := range []string{"/versions", "/info/rack", "/names"} {
		resp, full, _ := do(t, "GET", base+doc)
		if want := fmt.Sprintf(`"%x"`, md5.Sum(full)); resp.StatusCode != 200 || resp.Header.Get("Etag") != want {
			t.Errorf("%s: %d, ETag %q, want %s", doc, resp.StatusCode, resp.Header.Get("Etag"), want)
			continue
		}
		if resp, _, _ := do(t, "GET", base+doc, "If-None-Match", resp.Header.Get("Etag")); resp.StatusCode != http.StatusNotModified {
			t.Errorf("%s with its ETag: %d, want 304", doc, resp.StatusCode)
		}
		resp, part, _ := do(t, "GET", base+doc, "Range", "bytes=4-")
		if resp.StatusCode != http.StatusPartialContent || string(part) != string(full[4:]) {
			t.Errorf("%s, bytes=4-: %d %q, want 206 %q", doc, resp.StatusCode, part, full[4:])
		}
	}
}
