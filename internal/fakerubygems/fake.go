// Package fakerubygems is a local RubyGems repository for tests: the
// compact index (/versions with each /info file's MD5, /info/<gem>,
// /names) made from the gems published to it, and /gems/<file>, with
// controls to publish, corrupt and count requests. The gems are given as
// bytes (the tests build real ones with gem build where the client needs
// them).
package fakerubygems

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/fakeserver"
)

// Gem is one published version.
type Gem struct {
	Name, Version string
	// Deps are runtime dependencies ("name" → "requirement", ">= 1.0").
	Deps map[string]string
	// Bytes is the .gem file.
	Bytes []byte
	// Time is its created_at in the versions API (zero: a fixed date).
	Time time.Time
}

// Server is the fake repository.
type Server struct {
	mu      sync.Mutex
	gems    map[string][]Gem // name → versions, in publish order
	corrupt map[string]bool  // file → answers other bytes
	fakeserver.Server
}

// New returns an empty repository.
func New() *Server { return &Server{gems: map[string][]Gem{}, corrupt: map[string]bool{}} }

// Publish adds a version.
func (s *Server) Publish(g Gem) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gems[g.Name] = append(s.gems[g.Name], g)
}

// Corrupt makes a gem file answer other bytes, or its own.
func (s *Server) Corrupt(file string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.corrupt[file] = on
}

// URL is the repository's base URL.
func (s *Server) URL() string { return "http://" + s.Addr() }

// Start serves on addr.
func (s *Server) Start(addr string) error { return s.Server.Start(addr, http.HandlerFunc(s.serve)) }

// info is a gem's /info file (locked).
func (s *Server) info(name string) string {
	var b strings.Builder
	b.WriteString("---\n")
	for _, g := range s.gems[name] {
		var deps []string
		for d, req := range g.Deps {
			deps = append(deps, d+":"+req)
		}
		sort.Strings(deps)
		sum := sha256.Sum256(g.Bytes)
		fmt.Fprintf(&b, "%s %s|checksum:%s\n", g.Version, strings.Join(deps, ","), hex.EncodeToString(sum[:]))
	}
	return b.String()
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := strings.TrimPrefix(r.URL.Path, "/")
	var names []string
	for n := range s.gems {
		names = append(names, n)
	}
	sort.Strings(names)
	switch {
	case p == "versions":
		var b strings.Builder
		b.WriteString("created_at: 2024-01-02T03:04:05Z\n---\n")
		for _, n := range names {
			var vs []string
			for _, g := range s.gems[n] {
				vs = append(vs, g.Version)
			}
			sum := md5.Sum([]byte(s.info(n)))
			fmt.Fprintf(&b, "%s %s %s\n", n, strings.Join(vs, ","), hex.EncodeToString(sum[:]))
		}
		w.Write([]byte(b.String()))
	case p == "names":
		w.Write([]byte("---\n" + strings.Join(names, "\n") + "\n"))
	case strings.HasPrefix(p, "info/"):
		n := strings.TrimPrefix(p, "info/")
		if len(s.gems[n]) == 0 {
			http.NotFound(w, r)
			return
		}
		body := s.info(n)
		sum := md5.Sum([]byte(body))
		w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:])+`"`)
		w.Write([]byte(body))
	case strings.HasPrefix(p, "api/v1/versions/") && strings.HasSuffix(p, ".json"):
		n := strings.TrimSuffix(strings.TrimPrefix(p, "api/v1/versions/"), ".json")
		if len(s.gems[n]) == 0 {
			http.NotFound(w, r)
			return
		}
		var out []map[string]any
		for i := len(s.gems[n]) - 1; i >= 0; i-- { // newest first, as rubygems.org answers
			g := s.gems[n][i]
			t := g.Time
			if t.IsZero() {
				t = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
			}
			out = append(out, map[string]any{"number": g.Version, "platform": "ruby", "created_at": t.UTC().Format("2006-01-02T15:04:05.000Z")})
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(out)
	case strings.HasPrefix(p, "gems/"):
		file := strings.TrimPrefix(p, "gems/")
		for _, gs := range s.gems {
			for _, g := range gs {
				if g.Name+"-"+g.Version+".gem" == file {
					b := g.Bytes
					if s.corrupt[file] {
						b = append([]byte(nil), b...)
						b[len(b)/2] ^= 0xff
					}
					w.Header().Set("Content-Length", fmt.Sprint(len(b)))
					w.Write(b)
					return
				}
			}
		}
		http.NotFound(w, r)
	default:
		http.NotFound(w, r)
	}
}
