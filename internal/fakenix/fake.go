// Package fakenix is a local upstream shaped like a Nix binary cache for
// tests: nix-cache-info, narinfos and NARs, loaded from a directory that
// `nix copy --to file://...` wrote or added in memory, with controls to
// corrupt a NAR, drop the CA field of narinfos (so that the client must
// check the signature) and count requests.
package fakenix

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/mirror-proxy/mirror-proxy/internal/fakeserver"
	"github.com/mirror-proxy/mirror-proxy/mirror/nix"
)

// Server is the fake cache.
type Server struct {
	mu      sync.Mutex
	files   map[string][]byte // path without the leading slash
	corrupt map[string]bool
	// StripCA serves narinfos without their CA line: a content-addressed
	// path then needs a valid signature like any other.
	StripCA bool

	fakeserver.Server
}

// New returns an empty cache.
func New() *Server {
	return &Server{files: map[string][]byte{"nix-cache-info": []byte("StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 30\n")},
		corrupt: map[string]bool{}}
}

// LoadDir adds every file of a binary cache directory.
func (s *Server) LoadDir(dir string) error {
	return filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		s.mu.Lock()
		s.files[filepath.ToSlash(rel)] = b
		s.mu.Unlock()
		return nil
	})
}

// Add publishes a synthetic store path whose NAR is nar (uncompressed),
// and returns its hash and NAR file name.
func (s *Server) Add(name string, nar []byte) (hash, narFile string) {
	sum := sha256.Sum256(nar)
	file := nix.EncodeBase32(sum[:])
	hsum := sha256.Sum256([]byte(name))
	hash = nix.EncodeBase32(hsum[:20])
	narFile = file + ".nar"
	info := fmt.Sprintf("StorePath: /nix/store/%s-%s\nURL: nar/%s\nCompression: none\nFileHash: sha256:%s\nFileSize: %d\nNarHash: sha256:%s\nNarSize: %d\nReferences: \n",
		hash, name, narFile, file, len(nar), file, len(nar))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[hash+".narinfo"] = []byte(info)
	s.files["nar/"+narFile] = nar
	return hash, narFile
}

// SetFile replaces (or adds) a file of the cache.
func (s *Server) SetFile(path string, b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[path] = b
}

// File is a file of the cache.
func (s *Server) File(path string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.files[path]
}

// Corrupt makes a file answer other bytes (on) or its own again.
func (s *Server) Corrupt(path string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.corrupt[path] = on
}

// URL is the cache's URL (what substituters names).
func (s *Server) URL() string { return "http://" + s.Addr() }

// Start serves on addr.
func (s *Server) Start(addr string) error { return s.Server.Start(addr, http.HandlerFunc(s.serve)) }

var caLine = regexp.MustCompile(`(?m)^CA: .*\n`)

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimPrefix(r.URL.Path, "/")
	s.mu.Lock()
	b, ok := s.files[p]
	bad, strip := s.corrupt[p], s.StripCA
	s.mu.Unlock()
	if !ok || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		http.NotFound(w, r)
		return
	}
	if strip && strings.HasSuffix(p, ".narinfo") {
		b = caLine.ReplaceAll(b, nil)
	}
	if bad {
		b = append([]byte(nil), b...)
		b[len(b)/2] ^= 0xff
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(b)))
	w.Write(b)
}
