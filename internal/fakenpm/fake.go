// Package fakenpm is a local upstream shaped like the npm registry for
// tests: packuments (full, and abbreviated for Accept:
// application/vnd.npm.install-v1+json) with dist.integrity (sha512) and
// shasum, tarballs built in memory, scoped packages (/@scope%2fname), the
// audit endpoints, and controls to publish, corrupt and count requests.
package fakenpm

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha1"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/fakeserver"
)

// Version is one published version.
type Version struct {
	Version      string
	Dependencies map[string]string
	// Time is its publish time (default: 2024-01-01 plus its index).
	Time time.Time
	// ShasumOnly publishes the version without dist.integrity (old
	// packages have only the sha1 shasum).
	ShasumOnly bool
	// Size pads the tarball with this many incompressible bytes.
	Size int
}

// Server is the fake registry.
type Server struct {
	mu       sync.Mutex
	pkgs     map[string][]Version // by name ("lodash", "@acme/util")
	tarballs map[string][]byte    // tarball path → bytes
	corrupt  map[string]bool
	audits   int

	fakeserver.Server
}

// Catalogue: left-pad (two versions), is-even depends on is-odd, is-odd,
// @acme/util (scoped, depends on left-pad), many-versions (120 versions),
// old-pkg (shasum only).
func Catalogue() map[string][]Version {
	many := []Version{}
	for i := 0; i < 120; i++ {
		many = append(many, Version{Version: fmt.Sprintf("1.%d.0", i)})
	}
	return map[string][]Version{
		"left-pad":      {{Version: "1.2.0"}, {Version: "1.3.0"}},
		"is-odd":        {{Version: "3.0.1"}},
		"is-even":       {{Version: "1.0.0", Dependencies: map[string]string{"is-odd": "^3.0.0"}}},
		"@acme/util":    {{Version: "2.0.0", Dependencies: map[string]string{"left-pad": "^1.2.0"}}},
		"many-versions": many,
		"old-pkg":       {{Version: "0.1.0", ShasumOnly: true}},
	}
}

// New returns a registry with Catalogue.
func New() *Server {
	s := &Server{pkgs: map[string][]Version{}, tarballs: map[string][]byte{}, corrupt: map[string]bool{}}
	for n, vs := range Catalogue() {
		for _, v := range vs {
			s.Publish(n, v)
		}
	}
	return s
}

// Start serves on addr.
func (s *Server) Start(addr string) error { return s.Server.Start(addr, s) }

// URL is the registry's base URL.
func (s *Server) URL() string { return "http://" + s.Addr() }

// TarballPath is the path of name@version's tarball.
func TarballPath(name, version string) string {
	base := name
	if i := strings.IndexByte(name, '/'); i >= 0 {
		base = name[i+1:]
	}
	return "/" + name + "/-/" + base + "-" + version + ".tgz"
}

// Publish adds a version (its tarball is built now).
func (s *Server) Publish(name string, v Version) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v.Time.IsZero() {
		v.Time = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(len(s.pkgs[name])) * time.Hour)
	}
	s.pkgs[name] = append(s.pkgs[name], v)
	s.tarballs[TarballPath(name, v.Version)] = buildTarball(name, v)
}

// Unpublish takes a version down (its packument entry; the tarball stays,
// as registries keep serving lock files for a while).
func (s *Server) Unpublish(name, version string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	vs := s.pkgs[name][:0:0]
	for _, v := range s.pkgs[name] {
		if v.Version != version {
			vs = append(vs, v)
		}
	}
	s.pkgs[name] = vs
}

// Tarball returns the bytes of name@version's tarball.
func (s *Server) Tarball(name, version string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tarballs[TarballPath(name, version)]
}

// Corrupt makes the tarball of name@version differ from its integrity.
func (s *Server) Corrupt(name, version string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.corrupt[TarballPath(name, version)] = on
}

// Audits is how many audit requests arrived.
func (s *Server) Audits() int { s.mu.Lock(); defer s.mu.Unlock(); return s.audits }

func buildTarball(name string, v Version) []byte {
	pj, _ := json.MarshalIndent(map[string]any{"name": name, "version": v.Version, "main": "index.js",
		"dependencies": v.Dependencies}, "", "  ")
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	mod := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	files := []struct{ name, body string }{
		{"package/package.json", string(pj)},
		{"package/index.js", fmt.Sprintf("module.exports = %q;\n", name+"@"+v.Version)},
	}
	if v.Size > 0 {
		pad := make([]byte, v.Size)
		mrand.New(mrand.NewSource(int64(v.Size))).Read(pad)
		files = append(files, struct{ name, body string }{"package/blob.bin", string(pad)})
	}
	for _, f := range files {
		tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), ModTime: mod, Typeflag: tar.TypeReg})
		tw.Write([]byte(f.body))
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	switch {
	case path == "/-/ping":
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, "{}")
		return
	case strings.HasPrefix(path, "/-/npm/v1/security/"):
		s.mu.Lock()
		s.audits++
		s.mu.Unlock()
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, "{}")
		return
	case strings.Contains(path, "/-/"):
		s.serveTarball(w, path)
		return
	}
	name, err := url.PathUnescape(strings.TrimPrefix(r.URL.EscapedPath(), "/"))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	s.servePackument(w, r, name)
}

func (s *Server) serveTarball(w http.ResponseWriter, path string) {
	s.mu.Lock()
	b, ok := s.tarballs[path]
	bad := s.corrupt[path]
	s.mu.Unlock()
	if !ok {
		http.NotFound(w, nil)
		return
	}
	if bad {
		b = append([]byte{}, b...)
		b[len(b)/2] ^= 0xff
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", fmt.Sprint(len(b)))
	w.Write(b)
}

func (s *Server) servePackument(w http.ResponseWriter, r *http.Request, name string) {
	s.mu.Lock()
	vs, ok := s.pkgs[name]
	vs = append([]Version{}, vs...)
	tarballs := map[string][]byte{}
	for _, v := range vs {
		tarballs[v.Version] = s.tarballs[TarballPath(name, v.Version)]
	}
	s.mu.Unlock()
	if !ok {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"error":"Not found"}`)
		return
	}
	abbreviated := strings.Contains(r.Header.Get("Accept"), "application/vnd.npm.install-v1+json")
	versions := map[string]any{}
	times := map[string]string{}
	sort.Slice(vs, func(i, j int) bool { return vs[i].Time.Before(vs[j].Time) })
	for _, v := range vs {
		b := tarballs[v.Version]
		s1 := sha1.Sum(b)
		s512 := sha512.Sum512(b)
		dist := map[string]any{"tarball": s.URL() + TarballPath(name, v.Version), "shasum": hex.EncodeToString(s1[:])}
		if !v.ShasumOnly {
			dist["integrity"] = "sha512-" + base64.StdEncoding.EncodeToString(s512[:])
		}
		doc := map[string]any{"name": name, "version": v.Version, "dist": dist}
		if len(v.Dependencies) > 0 {
			doc["dependencies"] = v.Dependencies
		}
		if !abbreviated {
			doc["description"] = "fake " + name
			doc["_id"] = name + "@" + v.Version
		}
		versions[v.Version] = doc
		times[v.Version] = v.Time.Format(time.RFC3339)
	}
	latest := vs[len(vs)-1].Version
	doc := map[string]any{"name": name, "dist-tags": map[string]string{"latest": latest}, "versions": versions,
		"modified": vs[len(vs)-1].Time.Format(time.RFC3339)}
	ctype := "application/vnd.npm.install-v1+json"
	if !abbreviated {
		doc["_id"] = name
		doc["time"] = times
		doc["description"] = "fake " + name
		ctype = "application/json"
	}
	b, _ := json.Marshal(doc)
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Vary", "Accept")
	w.Header().Set("Content-Length", strconv.Itoa(len(b))) // as the registry's CDN does
	w.Write(b)
}
