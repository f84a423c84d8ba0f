// Package fakegoproxy is a local Go module proxy for tests (the GOPROXY
// protocol: list, @latest, .info, .mod, .zip, with !-escaped paths) with
// its own checksum database (golang.org/x/mod/sumdb's server over a test
// tree, signed with a key made for the run), and controls to publish,
// corrupt and count requests.
package fakegoproxy

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"io/fs"
	mrand "math/rand"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
	"golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/dirhash"
	"golang.org/x/mod/sumdb/note"
	modzip "golang.org/x/mod/zip"

	"github.com/mirror-proxy/mirror-proxy/internal/fakeserver"
)

// SumDBName is the checksum database's name.
const SumDBName = "sum.test"

// Module is one version of a module.
type Module struct {
	Path, Version string
	// Require are go.mod require lines ("example.com/lib v1.0.0").
	Require []string
	// Time is the version's .info Time (zero: a fixed date).
	Time time.Time
	// Size adds a file of this many incompressible bytes.
	Size int
}

type built struct {
	mod              Module
	gomod, zip, info []byte
}

// Server is the fake proxy and its checksum database.
type Server struct {
	mu      sync.Mutex
	mods    map[string][]*built // path → versions
	corrupt map[string]bool     // "path@version" → zip answers other bytes
	signer  string
	// VerifierKey is the database's key as GOSUMDB and MIRRORS take it.
	VerifierKey string
	sumdb       http.Handler

	fakeserver.Server
}

// New returns a proxy with example.com/lib v1.0.0 and v1.1.0 (package lib,
// func Hello) and example.com/Upper/Mod v1.0.0 (package mod, func Name),
// whose path has upper case.
func New() *Server {
	skey, vkey, err := note.GenerateKey(rand.Reader, SumDBName)
	if err != nil {
		panic(err)
	}
	s := &Server{mods: map[string][]*built{}, corrupt: map[string]bool{}, signer: skey, VerifierKey: vkey}
	s.sumdb = sumdb.NewServer(sumdb.NewTestServer(skey, s.gosum))
	s.Publish(Module{Path: "example.com/lib", Version: "v1.0.0"})
	s.Publish(Module{Path: "example.com/lib", Version: "v1.1.0"})
	s.Publish(Module{Path: "example.com/Upper/Mod", Version: "v1.0.0"})
	return s
}

// Publish adds a module version.
func (s *Server) Publish(m Module) {
	if m.Time.IsZero() {
		m.Time = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	}
	b := &built{mod: m}
	var gm strings.Builder
	fmt.Fprintf(&gm, "module %s\n\ngo 1.21\n", m.Path)
	for _, r := range m.Require {
		fmt.Fprintf(&gm, "\nrequire %s\n", r)
	}
	b.gomod = []byte(gm.String())
	elems := strings.Split(m.Path, "/")
	pkg := strings.ToLower(elems[len(elems)-1])
	files := []modzip.File{
		memFile{"go.mod", b.gomod},
		memFile{pkg + ".go", []byte(fmt.Sprintf("package %s\n\n// Name is the module and version.\nfunc Name() string { return %q }\n", pkg, m.Path+"@"+m.Version))},
	}
	if m.Size > 0 {
		data := make([]byte, m.Size)
		mrand.New(mrand.NewSource(int64(len(m.Path)))).Read(data)
		files = append(files, memFile{"data.bin", data})
	}
	var zb bytes.Buffer
	if err := modzip.Create(&zb, module.Version{Path: m.Path, Version: m.Version}, files); err != nil {
		panic(err)
	}
	b.zip = zb.Bytes()
	b.info = []byte(fmt.Sprintf(`{"Version":%q,"Time":%q}`, m.Version, m.Time.UTC().Format(time.RFC3339)))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mods[m.Path] = append(s.mods[m.Path], b)
	sort.Slice(s.mods[m.Path], func(i, j int) bool {
		return semver.Compare(s.mods[m.Path][i].mod.Version, s.mods[m.Path][j].mod.Version) < 0
	})
}

// Zip is the zip of path@version as published.
func (s *Server) Zip(path, version string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b := s.find(path, version); b != nil {
		return b.zip
	}
	return nil
}

// Corrupt makes the zip of path@version answer other bytes (a valid zip
// of other content) or its own again.
func (s *Server) Corrupt(path, version string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.corrupt[path+"@"+version] = on
}

// URL is the proxy's base URL (GOPROXY).
func (s *Server) URL() string { return "http://" + s.Addr() }

// SumDBURL is the checksum database's base URL.
func (s *Server) SumDBURL() string { return s.URL() + "/sumdb-server" }

// Start serves on addr.
func (s *Server) Start(addr string) error { return s.Server.Start(addr, http.HandlerFunc(s.serve)) }

func (s *Server) find(path, version string) *built {
	for _, b := range s.mods[path] {
		if b.mod.Version == version {
			return b
		}
	}
	return nil
}

// gosum is the database's record of path@vers: its go.sum lines.
func (s *Server) gosum(path, vers string) ([]byte, error) {
	s.mu.Lock()
	b := s.find(path, vers)
	s.mu.Unlock()
	if b == nil {
		return nil, fmt.Errorf("%s@%s: not found", path, vers)
	}
	zh, err := hashZip(b.zip)
	if err != nil {
		return nil, err
	}
	mh, err := dirhash.Hash1([]string{"go.mod"}, func(string) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b.gomod)), nil })
	if err != nil {
		return nil, err
	}
	return []byte(fmt.Sprintf("%s %s %s\n%s %s/go.mod %s\n", path, vers, zh, path, vers, mh)), nil
}

// hashZip is a module zip's h1: hash.
func hashZip(z []byte) (string, error) {
	f, err := os.CreateTemp("", "fakegoproxy-*.zip")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	f.Write(z)
	f.Close()
	return dirhash.HashZip(f.Name(), dirhash.Hash1)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if rest, ok := strings.CutPrefix(r.URL.Path, "/sumdb-server"); ok {
		r2 := r.Clone(r.Context())
		r2.URL.Path = rest
		s.sumdb.ServeHTTP(w, r2)
		return
	}
	p := strings.TrimPrefix(r.URL.Path, "/")
	var escaped, tail string
	switch {
	case strings.HasSuffix(p, "/@latest"):
		escaped, tail = strings.TrimSuffix(p, "/@latest"), "@latest"
	case strings.Contains(p, "/@v/"):
		i := strings.LastIndex(p, "/@v/")
		escaped, tail = p[:i], p[i+len("/@v/"):]
	default:
		http.NotFound(w, r)
		return
	}
	path, err := module.UnescapePath(escaped)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	versions := s.mods[path]
	s.mu.Unlock()
	if len(versions) == 0 {
		http.Error(w, "not found: "+path, http.StatusNotFound)
		return
	}
	switch {
	case tail == "list":
		for _, b := range versions {
			fmt.Fprintln(w, b.mod.Version)
		}
		return
	case tail == "@latest":
		w.Header().Set("Content-Type", "application/json")
		w.Write(versions[len(versions)-1].info)
		return
	}
	dot := strings.LastIndexByte(tail, '.')
	if dot < 0 {
		http.NotFound(w, r)
		return
	}
	vers, err := module.UnescapeVersion(tail[:dot])
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	b := s.find(path, vers)
	corrupt := s.corrupt[path+"@"+vers]
	s.mu.Unlock()
	if b == nil {
		http.Error(w, "not found: "+path+"@"+vers, http.StatusGone)
		return
	}
	switch tail[dot+1:] {
	case "info":
		w.Header().Set("Content-Type", "application/json")
		w.Write(b.info)
	case "mod":
		w.Write(b.gomod)
	case "zip":
		z := b.zip
		if corrupt {
			var zb bytes.Buffer
			modzip.Create(&zb, module.Version{Path: path, Version: vers}, []modzip.File{memFile{"go.mod", b.gomod}, memFile{"evil.go", bytes.Repeat([]byte("// tampered\n"), len(b.zip)/12+1)}})
			z = zb.Bytes()
		}
		w.Header().Set("Content-Type", "application/zip")
		w.Header().Set("Content-Length", fmt.Sprint(len(z)))
		w.Write(z)
	default:
		http.NotFound(w, r)
	}
}

// memFile is a file of a module zip, in memory.
type memFile struct {
	path string
	data []byte
}

func (f memFile) Path() string                 { return f.path }
func (f memFile) Lstat() (os.FileInfo, error)  { return fileInfo(f), nil }
func (f memFile) Open() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(f.data)), nil }

type fileInfo memFile

func (f fileInfo) Name() string       { return f.path[strings.LastIndexByte(f.path, '/')+1:] }
func (f fileInfo) Size() int64        { return int64(len(f.data)) }
func (f fileInfo) Mode() fs.FileMode  { return 0o644 }
func (f fileInfo) ModTime() time.Time { return time.Time{} }
func (f fileInfo) IsDir() bool        { return false }
func (f fileInfo) Sys() any           { return nil }
