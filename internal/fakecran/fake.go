// Package fakecran is a local upstream shaped like a CRAN repository for
// tests: src/contrib/PACKAGES and PACKAGES.gz (with MD5sum and
// Date/Publication), source tarballs R can install (DESCRIPTION,
// NAMESPACE, R/), older versions under src/contrib/Archive/<pkg>/, and
// controls to publish, archive, corrupt and count requests. PACKAGES.rds
// is a 404, as on repositories that do not make it: R then reads
// PACKAGES.gz.
package fakecran

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	mrand "math/rand"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/fakeserver"
)

// Version is one published version of a package.
type Version struct {
	Version string
	Imports []string
	// Time is its publication (Date/Publication); zero leaves the field
	// out, as some repositories do.
	Time time.Time
	// Size pads the tarball with this many incompressible bytes.
	Size int
}

// Server is the fake repository.
type Server struct {
	mu       sync.Mutex
	pkgs     map[string][]Version // oldest first; the last is current
	archived map[string]bool      // "pkg_ver": moved to Archive even if current
	tarballs map[string][]byte    // "pkg_ver.tar.gz" → bytes
	corrupt  map[string]bool

	fakeserver.Server
}

// New returns a repository with a catalogue: hello 1.0 and 1.1 (1.0 in
// Archive), world 0.5 which imports hello.
func New() *Server {
	s := &Server{pkgs: map[string][]Version{}, archived: map[string]bool{}, tarballs: map[string][]byte{}, corrupt: map[string]bool{}}
	s.Publish("hello", Version{Version: "1.0", Time: time.Date(2024, 1, 10, 8, 0, 0, 0, time.UTC)})
	s.Publish("hello", Version{Version: "1.1", Time: time.Date(2024, 6, 10, 8, 0, 0, 0, time.UTC)})
	s.Publish("world", Version{Version: "0.5", Imports: []string{"hello"}, Time: time.Date(2024, 3, 1, 8, 0, 0, 0, time.UTC)})
	return s
}

// Publish adds a version; it becomes the package's current one.
func (s *Server) Publish(pkg string, v Version) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pkgs[pkg] = append(s.pkgs[pkg], v)
	s.tarballs[pkg+"_"+v.Version+".tar.gz"] = buildTarball(pkg, v)
}

// Archive moves a current version to src/contrib/Archive (it leaves
// PACKAGES), as CRAN does when a package is archived.
func (s *Server) Archive(pkg, version string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.archived[pkg+"_"+version] = true
}

// Corrupt makes the tarball of pkg_version answer other bytes (on) or its
// own again.
func (s *Server) Corrupt(pkg, version string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.corrupt[pkg+"_"+version+".tar.gz"] = on
}

// Tarball is the published tarball of pkg_version.
func (s *Server) Tarball(pkg, version string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tarballs[pkg+"_"+version+".tar.gz"]
}

// URL is the repository's base URL (what repos= names).
func (s *Server) URL() string { return "http://" + s.Addr() }

// Start serves on addr.
func (s *Server) Start(addr string) error { return s.Server.Start(addr, http.HandlerFunc(s.serve)) }

// current is the version PACKAGES lists for pkg ("" : none).
func (s *Server) current(pkg string) (Version, bool) {
	vs := s.pkgs[pkg]
	if len(vs) == 0 || s.archived[pkg+"_"+vs[len(vs)-1].Version] {
		return Version{}, false
	}
	return vs[len(vs)-1], true
}

// Packages is the PACKAGES file.
func (s *Server) Packages() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.pkgs))
	for n := range s.pkgs {
		names = append(names, n)
	}
	sort.Strings(names)
	var b bytes.Buffer
	for _, n := range names {
		v, ok := s.current(n)
		if !ok {
			continue
		}
		sum := md5.Sum(s.tarballs[n+"_"+v.Version+".tar.gz"])
		fmt.Fprintf(&b, "Package: %s\nVersion: %s\n", n, v.Version)
		if len(v.Imports) > 0 {
			fmt.Fprintf(&b, "Imports: %s\n", strings.Join(v.Imports, ", "))
		}
		fmt.Fprintf(&b, "License: MIT + file LICENSE\nMD5sum: %s\nNeedsCompilation: no\n", hex.EncodeToString(sum[:]))
		if !v.Time.IsZero() {
			fmt.Fprintf(&b, "Date/Publication: %s\n", v.Time.UTC().Format("2006-01-02 15:04:05 UTC"))
		}
		b.WriteString("\n")
	}
	return b.Bytes()
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == "/src/contrib/PACKAGES":
		w.Write(s.Packages())
		return
	case p == "/src/contrib/PACKAGES.gz":
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write(s.Packages())
		zw.Close()
		w.Header().Set("Content-Type", "application/x-gzip")
		w.Write(b.Bytes())
		return
	}
	var file string
	archive := false
	if f, ok := strings.CutPrefix(p, "/src/contrib/Archive/"); ok {
		_, file, _ = strings.Cut(f, "/")
		archive = true
	} else if f, ok := strings.CutPrefix(p, "/src/contrib/"); ok && !strings.Contains(f, "/") {
		file = f
	}
	s.mu.Lock()
	body, ok := s.tarballs[file]
	pkg, ver, _ := strings.Cut(strings.TrimSuffix(file, ".tar.gz"), "_")
	cur, isCurrent := s.current(pkg)
	isCurrent = isCurrent && cur.Version == ver
	bad := s.corrupt[file]
	s.mu.Unlock()
	// Current versions are under src/contrib, all others under Archive.
	if !ok || archive == isCurrent || (archive && !strings.HasPrefix(p, "/src/contrib/Archive/"+pkg+"/")) {
		http.NotFound(w, r)
		return
	}
	if bad {
		body = append([]byte(nil), body...)
		body[len(body)/2] ^= 0xff
	}
	w.Header().Set("Content-Type", "application/x-gzip")
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.Write(body)
}

// buildTarball makes a source package R installs without compiling.
func buildTarball(pkg string, v Version) []byte {
	desc := fmt.Sprintf("Package: %s\nVersion: %s\nTitle: Test Package %s\nDescription: A package for the mirror's tests.\nLicense: MIT + file LICENSE\nAuthor: Test\nMaintainer: Test <test@example.invalid>\nEncoding: UTF-8\n", pkg, v.Version, pkg)
	if len(v.Imports) > 0 {
		desc += "Imports: " + strings.Join(v.Imports, ", ") + "\n"
	}
	files := map[string][]byte{
		"DESCRIPTION":     []byte(desc),
		"LICENSE":         []byte("YEAR: 2024\nCOPYRIGHT HOLDER: Test\n"),
		"NAMESPACE":       []byte("export(" + pkgFunc(pkg) + ")\n"),
		"R/" + pkg + ".R": []byte(pkgFunc(pkg) + " <- function() \"" + pkg + " " + v.Version + "\"\n"),
	}
	if v.Size > 0 {
		pad := make([]byte, v.Size)
		mrand.New(mrand.NewSource(int64(len(pkg) + v.Size))).Read(pad)
		files["inst/pad.bin"] = pad
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	tw := tar.NewWriter(zw)
	for _, n := range names {
		tw.WriteHeader(&tar.Header{Name: pkg + "/" + n, Mode: 0o644, Size: int64(len(files[n])), ModTime: time.Unix(1700000000, 0), Typeflag: tar.TypeReg})
		tw.Write(files[n])
	}
	tw.Close()
	zw.Close()
	return b.Bytes()
}

// pkgFunc is the one function a package exports: <pkg>_version().
func pkgFunc(pkg string) string { return strings.ReplaceAll(pkg, ".", "_") + "_version" }
