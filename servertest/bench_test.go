package servertest_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/policy"
	"github.com/mirror-proxy/mirror-proxy/proxy"
)

// BenchmarkWarmP2 measures the handler alone on the warm metadata path
// (a memory hit); `go test -bench WarmP2 -cpuprofile` shows where it goes.
func BenchmarkWarmP2(b *testing.B) { benchWarmP2(b, policy.Cooldown{}) }

// BenchmarkWarmP2Cooldown is the same with a cooldown on (every version
// of acme/huge is old enough): the filtered document is made once, so the
// difference is the policy's lookup per request.
func BenchmarkWarmP2Cooldown(b *testing.B) { benchWarmP2(b, policy.Cooldown{Age: 72 * time.Hour}) }

func benchWarmP2(b *testing.B, cooldown policy.Cooldown) {
	e := newEnvWith(b, time.Hour, func(o *proxy.Options) {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
		o.Mirrors[0].Cooldown = cooldown
	})
	h := e.srv.Handler()
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
