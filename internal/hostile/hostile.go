// Package hostile is a malicious upstream for the security tests: every
// path answers whatever the test scripted (markup in hashes and names,
// redirects to other ports and internal addresses, gzip bombs, endless or
// stalled bodies, oversized files), and it records what each request
// carried (Authorization headers above all).
package hostile

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/fakeserver"
)

// Request is what the server saw of one request.
type Request struct {
	Method, Path, Authorization string
}

// Server answers scripted responses.
type Server struct {
	fakeserver.Server
	mu     sync.Mutex
	routes map[string]http.HandlerFunc
	seen   []Request
}

// New returns a server with no routes (everything is 404).
func New() *Server { return &Server{routes: map[string]http.HandlerFunc{}} }

// Start listens on addr ("127.0.0.1:0" for a free port).
func (s *Server) Start(addr string) error { return s.Server.Start(addr, s) }

// URL is http://host:port of the server.
func (s *Server) URL() string { return "http://" + s.Addr() }

// Handle scripts path (exact match; a path ending in "*" matches a prefix).
func (s *Server) Handle(path string, h http.HandlerFunc) {
	s.mu.Lock()
	s.routes[path] = h
	s.mu.Unlock()
}

// Seen returns the requests received so far.
func (s *Server) Seen() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.seen...)
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.seen = append(s.seen, Request{r.Method, r.URL.Path, r.Header.Get("Authorization")})
	h := s.routes[r.URL.Path]
	if h == nil {
		for p, ph := range s.routes {
			if strings.HasSuffix(p, "*") && strings.HasPrefix(r.URL.Path, strings.TrimSuffix(p, "*")) {
				h = ph
			}
		}
	}
	s.mu.Unlock()
	if h == nil {
		http.NotFound(w, r)
		return
	}
	h(w, r)
}

// Body answers 200 with body and content type ctype.
func Body(ctype, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", ctype)
		w.Write([]byte(body))
	}
}

// Bytes answers 200 with b as application/octet-stream.
func Bytes(b []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		w.Write(b)
	}
}

// Redirect answers 302 to target.
func Redirect(target string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, target, http.StatusFound) }
}

// GzipBomb answers a gzip-encoded body of n zero bytes (a few kB on the
// wire) with ctype.
func GzipBomb(ctype string, n int64) http.HandlerFunc {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zero := make([]byte, 1<<20)
	for left := n; left > 0; left -= int64(len(zero)) {
		zw.Write(zero[:min(left, int64(len(zero)))])
	}
	zw.Close()
	bomb := buf.Bytes()
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", ctype)
		w.Header().Set("Content-Encoding", "gzip")
		w.Write(bomb)
	}
}

// Endless sends zero bytes without a Content-Length until the client
// goes away.
func Endless() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		chunk := make([]byte, 64<<10)
		for {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}
}

// Stall sends head, then nothing for d (or until the client goes away),
// then tail.
func Stall(head, tail []byte, d time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(head)+len(tail)))
		w.Write(head)
		w.(http.Flusher).Flush()
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
		w.Write(tail)
	}
}
