// Package fakecargo is a local sparse Cargo registry for tests:
// config.json (with a dl template), index files with cksum and pubtime,
// and .crate files cargo can build (Cargo.toml and src/lib.rs), with
// controls to publish, corrupt and count requests.
package fakecargo

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mrand "math/rand"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/fakeserver"
)

// Crate is one published version.
type Crate struct {
	Name, Vers string
	// Deps are dependencies ("name" = "req").
	Deps map[string]string
	// PubTime is the index's pubtime (zero: left out, as for old crates).
	PubTime time.Time
	// Size pads the crate with this many incompressible bytes.
	Size int
}

// Server is the fake registry.
type Server struct {
	mu      sync.Mutex
	crates  map[string][]Crate // lowercase name → versions, oldest first
	files   map[string][]byte  // "name-vers" → .crate
	corrupt map[string]bool
	fakeserver.Server
}

// New returns a registry with hello 0.1.0 and 0.2.0, and Mixed_Case 1.0.0
// (a name with upper case and an underscore).
func New() *Server {
	s := &Server{crates: map[string][]Crate{}, files: map[string][]byte{}, corrupt: map[string]bool{}}
	old := time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC)
	s.Publish(Crate{Name: "hello", Vers: "0.1.0", PubTime: old})
	s.Publish(Crate{Name: "hello", Vers: "0.2.0", PubTime: old})
	s.Publish(Crate{Name: "Mixed_Case", Vers: "1.0.0", PubTime: old})
	return s
}

// Publish adds a version.
func (s *Server) Publish(c Crate) {
	b := build(c)
	s.mu.Lock()
	defer s.mu.Unlock()
	k := strings.ToLower(c.Name)
	s.crates[k] = append(s.crates[k], c)
	s.files[c.Name+"-"+c.Vers] = b
}

// CrateFile is the .crate of name-vers.
func (s *Server) CrateFile(name, vers string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.files[name+"-"+vers]
}

// Corrupt makes the .crate of name-vers answer other bytes, or its own.
func (s *Server) Corrupt(name, vers string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.corrupt[name+"-"+vers] = on
}

// URL is the index's base URL (the mirror's url).
func (s *Server) URL() string { return "http://" + s.Addr() }

// Start serves on addr.
func (s *Server) Start(addr string) error { return s.Server.Start(addr, http.HandlerFunc(s.serve)) }

func build(c Crate) []byte {
	var manifest strings.Builder
	fmt.Fprintf(&manifest, "[package]\nname = %q\nversion = %q\nedition = \"2021\"\n\n[lib]\npath = \"src/lib.rs\"\n\n[dependencies]\n", c.Name, c.Vers)
	for d, req := range c.Deps {
		fmt.Fprintf(&manifest, "%s = %q\n", d, req)
	}
	files := map[string][]byte{
		"Cargo.toml": []byte(manifest.String()),
		"src/lib.rs": []byte(fmt.Sprintf("pub fn name() -> &'static str { %q }\n", c.Name+" "+c.Vers)),
	}
	if c.Size > 0 {
		pad := make([]byte, c.Size)
		mrand.New(mrand.NewSource(int64(len(c.Name)))).Read(pad)
		files["pad.bin"] = pad
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, name := range []string{"Cargo.toml", "src/lib.rs", "pad.bin"} {
		b, ok := files[name]
		if !ok {
			continue
		}
		tw.WriteHeader(&tar.Header{Name: c.Name + "-" + c.Vers + "/" + name, Mode: 0o644, Size: int64(len(b)), ModTime: time.Unix(0, 0)})
		tw.Write(b)
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

// indexPath is the index file path of a lowercase name.
func indexPath(n string) string {
	switch len(n) {
	case 1:
		return "1/" + n
	case 2:
		return "2/" + n
	case 3:
		return "3/" + n[:1] + "/" + n
	}
	return n[:2] + "/" + n[2:4] + "/" + n
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimPrefix(r.URL.Path, "/")
	switch {
	case p == "config.json":
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"dl": s.URL() + "/files/{crate}/{crate}-{version}.crate", "api": s.URL()})
		return
	case strings.HasPrefix(p, "files/"):
		parts := strings.Split(p, "/")
		if len(parts) != 3 {
			http.NotFound(w, r)
			return
		}
		key := strings.TrimSuffix(parts[2], ".crate")
		s.mu.Lock()
		b, ok := s.files[key]
		corrupt := s.corrupt[key]
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		if corrupt {
			b = append([]byte(nil), b...)
			b[len(b)/2] ^= 0xff
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		w.Write(b)
		return
	}
	name := p[strings.LastIndexByte(p, '/')+1:]
	s.mu.Lock()
	versions := s.crates[name]
	var lines []string
	if len(versions) > 0 && indexPath(name) == p {
		for _, c := range versions {
			sum := sha256.Sum256(s.files[c.Name+"-"+c.Vers])
			deps := []map[string]any{}
			for d, req := range c.Deps {
				deps = append(deps, map[string]any{"name": d, "req": req, "features": []string{}, "optional": false,
					"default_features": true, "target": nil, "kind": "normal"})
			}
			line := map[string]any{"name": c.Name, "vers": c.Vers, "deps": deps, "cksum": hex.EncodeToString(sum[:]),
				"features": map[string]any{}, "yanked": false, "v": 2}
			if !c.PubTime.IsZero() {
				line["pubtime"] = c.PubTime.UTC().Format(time.RFC3339)
			}
			b, _ := json.Marshal(line)
			lines = append(lines, string(b))
		}
	}
	s.mu.Unlock()
	if len(lines) == 0 {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintln(w, strings.Join(lines, "\n"))
}
