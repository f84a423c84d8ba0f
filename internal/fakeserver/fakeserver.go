// Package fakeserver is what every fake upstream of the tests shares: a
// listener that can be stopped (connections refused) and started again on
// the same address, and a count of requests per path.
package fakeserver

import (
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Server serves a handler and counts its requests.
type Server struct {
	mu   sync.Mutex
	srv  *http.Server
	addr string
	hits map[string]int
}

// Start listens on addr ("127.0.0.1:0" for a free port) and serves h.
func (s *Server) Start(addr string, h http.Handler) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		if s.hits == nil {
			s.hits = map[string]int{}
		}
		s.hits[r.URL.Path]++
		s.mu.Unlock()
		h.ServeHTTP(w, r)
	})}
	s.mu.Lock()
	s.addr, s.srv = l.Addr().String(), srv
	s.mu.Unlock()
	go srv.Serve(l)
	return nil
}

// Stop closes the listener and every connection: the upstream is down
// until Start is called again (on Addr, to come back where it was).
func (s *Server) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// Addr is host:port of the last Start.
func (s *Server) Addr() string { s.mu.Lock(); defer s.mu.Unlock(); return s.addr }

// Hits is how many requests path received.
func (s *Server) Hits(path string) int { s.mu.Lock(); defer s.mu.Unlock(); return s.hits[path] }

// HitsPrefix sums the requests of paths starting with prefix.
func (s *Server) HitsPrefix(prefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for p, c := range s.hits {
		if strings.HasPrefix(p, prefix) {
			n += c
		}
	}
	return n
}

// HitsSuffix sums the requests of paths ending with suffix.
func (s *Server) HitsSuffix(suffix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for p, c := range s.hits {
		if strings.HasSuffix(p, suffix) {
			n += c
		}
	}
	return n
}

// WriteBody writes body; with a delay it sends half, waits, then the rest,
// so that concurrent requests overlap mid-transfer.
func WriteBody(w http.ResponseWriter, body []byte, delay time.Duration) {
	if delay > 0 {
		w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
		time.Sleep(delay)
		body = body[len(body)/2:]
	}
	w.Write(body)
}
