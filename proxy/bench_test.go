package proxy_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/fakepackagist"
	"github.com/mirror-proxy/mirror-proxy/proxy"
	"github.com/mirror-proxy/mirror-proxy/storage/local"
)

// BenchmarkWarmP2 measures the handler alone on the warm metadata path
// (a memory hit); `go test -bench WarmP2 -cpuprofile` shows where it goes.
func BenchmarkWarmP2(b *testing.B) {
	up := fakepackagist.New()
	if err := up.Start("127.0.0.1:0"); err != nil {
		b.Fatal(err)
	}
	defer up.Stop()
	st, _ := local.New(b.TempDir())
	srv := proxy.New(proxy.Options{Store: st, MetaPrefix: "m", DistPrefix: "d",
		Mirrors: []proxy.Mirror{{Name: "packagist", Type: "composer", URL: up.URL(), TTL: time.Hour, NotFoundTTL: time.Minute}},
		Logger:  slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	defer srv.Close()
	h := srv.Handler()
	req := httptest.NewRequest("GET", "/packagist/p2/acme/huge.json", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != 200 {
		b.Fatal(w.Code)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := httptest.NewRequest("GET", "/packagist/p2/acme/huge.json", nil)
		r.Header.Set("Accept-Encoding", "gzip")
		for pb.Next() {
			w := discard{h: http.Header{}}
			h.ServeHTTP(&w, r)
		}
	})
}

type discard struct {
	h    http.Header
	code int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(c int)           { d.code = c }
