// Package fakepypi is a local upstream shaped like PyPI for tests: wheels
// built in memory (standard library only), project pages in PEP 691 JSON
// (API 1.1: sizes, upload times, core-metadata hashes, yank reasons) or
// PEP 503 HTML only (relative file URLs), PEP 658 .metadata files,
// X-PyPI-Last-Serial and ETag/304, and controls to stop it, corrupt files
// and count requests.
package fakepypi

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"math/rand"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/fakeserver"
)

// Release is one version of a project, shipped as one wheel.
type Release struct {
	Version        string
	RequiresDist   []string
	RequiresPython string
	Yanked         string // reason; "" = not yanked
	Size           int    // pad the wheel with this many incompressible bytes
	// Uploaded is the file's upload-time (default 2024-01-01).
	Uploaded time.Time
}

// Project is one project of the fake index.
type Project struct {
	Name       string // display name, e.g. "Foo.Bar"
	Releases   []Release
	NoMetadata bool // do not advertise PEP 658 metadata
}

// Catalogue: Foo.Bar (depends on dep-pkg>=1), dep-pkg 1.0 and 2.0 (2.0
// needs Python >= 3.99), yanky 0.9 and 1.0 (yanked), big-wheel (20 MB),
// nometa (no PEP 658 metadata advertised).
func Catalogue() []Project {
	return []Project{
		{Name: "Foo.Bar", Releases: []Release{{Version: "1.0", RequiresDist: []string{"dep-pkg>=1"}}}},
		{Name: "dep-pkg", Releases: []Release{{Version: "1.0"}, {Version: "2.0", RequiresPython: ">=3.99"}}},
		{Name: "yanky", Releases: []Release{{Version: "0.9"}, {Version: "1.0", Yanked: "broken release"}}},
		{Name: "big-wheel", Releases: []Release{{Version: "1.0", Size: 20 << 20}}},
		{Name: "nometa", NoMetadata: true, Releases: []Release{{Version: "1.0"}}},
	}
}

type file struct {
	project  string // normalized
	filename string
	wheel    []byte
	metadata []byte
	rel      Release
	noMeta   bool
}

// Server is the fake index.
type Server struct {
	mu                sync.Mutex
	projects          map[string]Project // by normalized name
	files             map[string]*file   // by filename
	corrupt           map[string]bool
	htmlOnly          bool
	serial            map[string]int64
	delay             time.Duration
	fakeserver.Server // listener, Stop, Addr, Hits
}

var runs = regexp.MustCompile(`[-_.]+`)

// Normalize is PEP 503's rule.
func Normalize(n string) string { return strings.ToLower(runs.ReplaceAllString(n, "-")) }

// New builds the catalogue's wheels. htmlOnly serves PEP 503 HTML only.
func New(htmlOnly bool) *Server { return NewWith(Catalogue(), htmlOnly) }

// NewWith builds the given projects' wheels.
func NewWith(projects []Project, htmlOnly bool) *Server {
	s := &Server{projects: map[string]Project{}, files: map[string]*file{}, corrupt: map[string]bool{},
		htmlOnly: htmlOnly, serial: map[string]int64{}}
	for _, p := range projects {
		s.add(p)
	}
	return s
}

func (s *Server) add(p Project) {
	n := Normalize(p.Name)
	s.projects[n] = p
	s.serial[n] = 1000
	for _, r := range p.Releases {
		w, md, fn := buildWheel(p.Name, r)
		s.files[fn] = &file{project: n, filename: fn, wheel: w, metadata: md, rel: r, noMeta: p.NoMetadata}
	}
}

func distName(name string) string { return strings.ToLower(runs.ReplaceAllString(name, "_")) }

// BuildWheel is buildWheel for tests that publish a wheel themselves.
func BuildWheel(name string, r Release) (wheel, metadata []byte, filename string) {
	return buildWheel(name, r)
}

// BuildSdist writes an sdist (.tar.gz) with PKG-INFO (metadata 2.2) and a
// setup.py, as a build backend would.
func BuildSdist(name string, r Release) (sdist []byte, filename string) {
	dist := distName(name)
	top := fmt.Sprintf("%s-%s", dist, r.Version)
	var md strings.Builder
	fmt.Fprintf(&md, "Metadata-Version: 2.2\nName: %s\nVersion: %s\n", name, r.Version)
	if r.RequiresPython != "" {
		fmt.Fprintf(&md, "Requires-Python: %s\n", r.RequiresPython)
	}
	for _, d := range r.RequiresDist {
		fmt.Fprintf(&md, "Requires-Dist: %s\n", d)
	}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, m := range []struct{ path, body string }{
		{top + "/PKG-INFO", md.String()},
		{top + "/setup.py", fmt.Sprintf("from setuptools import setup\nsetup(name=%q, version=%q)\n", name, r.Version)},
		{top + "/" + dist + "/__init__.py", fmt.Sprintf("VERSION = %q\n", r.Version)},
	} {
		tw.WriteHeader(&tar.Header{Name: m.path, Mode: 0o644, Size: int64(len(m.body)), Typeflag: tar.TypeReg,
			ModTime: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)})
		tw.Write([]byte(m.body))
	}
	tw.Close()
	gz.Close()
	return buf.Bytes(), top + ".tar.gz"
}

// buildWheel writes a py3-none-any wheel by hand: a zip with the package,
// METADATA, WHEEL and RECORD.
func buildWheel(name string, r Release) (wheel, metadata []byte, filename string) {
	dist := distName(name)
	filename = fmt.Sprintf("%s-%s-py3-none-any.whl", dist, r.Version)
	var md strings.Builder
	fmt.Fprintf(&md, "Metadata-Version: 2.1\nName: %s\nVersion: %s\n", name, r.Version)
	if r.RequiresPython != "" {
		fmt.Fprintf(&md, "Requires-Python: %s\n", r.RequiresPython)
	}
	for _, d := range r.RequiresDist {
		fmt.Fprintf(&md, "Requires-Dist: %s\n", d)
	}
	metadata = []byte(md.String())
	info := fmt.Sprintf("%s-%s.dist-info/", dist, r.Version)
	members := []struct {
		path string
		body []byte
	}{
		{dist + "/__init__.py", []byte(fmt.Sprintf("VERSION = %q\n", r.Version))},
		{info + "METADATA", metadata},
		{info + "WHEEL", []byte("Wheel-Version: 1.0\nGenerator: fakepypi\nRoot-Is-Purelib: true\nTag: py3-none-any\n")},
	}
	if r.Size > 0 {
		pad := make([]byte, r.Size)
		rand.New(rand.NewSource(int64(r.Size))).Read(pad)
		members = append(members, struct {
			path string
			body []byte
		}{dist + "/data.bin", pad})
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	mod := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	var record strings.Builder
	for _, m := range members {
		method := zip.Deflate
		if strings.HasSuffix(m.path, ".bin") {
			method = zip.Store
		}
		w, _ := zw.CreateHeader(&zip.FileHeader{Name: m.path, Method: method, Modified: mod})
		w.Write(m.body)
		sum := sha256.Sum256(m.body)
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", m.path, base64.RawURLEncoding.EncodeToString(sum[:]), len(m.body))
	}
	fmt.Fprintf(&record, "%sRECORD,,\n", info)
	w, _ := zw.CreateHeader(&zip.FileHeader{Name: info + "RECORD", Method: zip.Deflate, Modified: mod})
	w.Write([]byte(record.String()))
	zw.Close()
	return buf.Bytes(), metadata, filename
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// Start listens on addr ("127.0.0.1:0" for a free port) and serves.
func (s *Server) Start(addr string) error { return s.Server.Start(addr, s) }

// Addr is host:port; IndexURL the simple index's URL (the mirror's url).
func (s *Server) IndexURL() string { return "http://" + s.Addr() + "/simple" }

// Wheel and Metadata return a file's bytes; Filename a release's wheel name.
func (s *Server) Wheel(filename string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.files[filename].wheel
}
func (s *Server) Metadata(filename string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.files[filename].metadata
}
func Filename(name, version string) string {
	return fmt.Sprintf("%s-%s-py3-none-any.whl", distName(name), version)
}

// Corrupt serves wrong bytes for filename (or heals it).
func (s *Server) Corrupt(filename string, on bool) {
	s.mu.Lock()
	s.corrupt[filename] = on
	s.mu.Unlock()
}

// SetDelay slows file responses: half the body, a pause, the rest.
func (s *Server) SetDelay(d time.Duration) { s.mu.Lock(); s.delay = d; s.mu.Unlock() }

// SetSerial sets a project's X-PyPI-Last-Serial.
func (s *Server) SetSerial(project string, n int64) {
	s.mu.Lock()
	s.serial[Normalize(project)] = n
	s.mu.Unlock()
}

// Publish adds a release (the page changes, the serial grows).
func (s *Server) Publish(name string, r Release) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := Normalize(name)
	p := s.projects[n]
	if p.Name == "" {
		p.Name = name // a new project
	}
	p.Releases = append(p.Releases, r)
	s.projects[n] = p
	w, md, fn := buildWheel(p.Name, r)
	s.files[fn] = &file{project: n, filename: fn, wheel: w, metadata: md, rel: r, noMeta: p.NoMetadata}
	s.serial[n]++
}

// Remove takes a release down (its files leave the page; the serial grows).
func (s *Server) Remove(name, version string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := Normalize(name)
	p := s.projects[n]
	rs := p.Releases[:0:0]
	for _, r := range p.Releases {
		if r.Version != version {
			rs = append(rs, r)
		}
	}
	p.Releases = rs
	s.projects[n] = p
	s.serial[n]++
}

// Hits counts requests per path; HitsPrefix sums paths with a prefix.

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == "/simple/":
		s.serveRoot(w, r)
	case strings.HasPrefix(p, "/simple/") && strings.HasSuffix(p, "/"):
		s.servePage(w, r, strings.TrimSuffix(strings.TrimPrefix(p, "/simple/"), "/"))
	case strings.HasPrefix(p, "/files/"):
		s.serveFile(w, r, strings.TrimPrefix(p, "/files/"))
	default:
		http.NotFound(w, r)
	}
}

func (s *Server) serveRoot(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	var names []string
	for _, p := range s.projects {
		names = append(names, p.Name)
	}
	htmlOnly := s.htmlOnly
	s.mu.Unlock()
	sort.Strings(names)
	if !htmlOnly && strings.Contains(r.Header.Get("Accept"), "application/vnd.pypi.simple.v1+json") {
		var ps []map[string]string
		for _, n := range names {
			ps = append(ps, map[string]string{"name": n})
		}
		w.Header().Set("Content-Type", "application/vnd.pypi.simple.v1+json")
		json.NewEncoder(w).Encode(map[string]any{"meta": map[string]string{"api-version": "1.0"}, "projects": ps})
		return
	}
	w.Header().Set("Content-Type", "text/html")
	fmt.Fprint(w, "<html><body>\n")
	for _, n := range names {
		fmt.Fprintf(w, "<a href=\"%s/\">%s</a>\n", Normalize(n), html.EscapeString(n))
	}
	fmt.Fprint(w, "</body></html>\n")
}

func (s *Server) servePage(w http.ResponseWriter, r *http.Request, name string) {
	s.mu.Lock()
	p, ok := s.projects[name]
	var files []*file
	for _, rel := range p.Releases {
		files = append(files, s.files[Filename(p.Name, rel.Version)])
	}
	serial := s.serial[name]
	htmlOnly := s.htmlOnly
	s.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("X-PyPI-Last-Serial", fmt.Sprint(serial))
	etag := fmt.Sprintf(`"%s-%d-%v"`, name, serial, htmlOnly)
	w.Header().Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	base := "http://" + r.Host
	if !htmlOnly && strings.Contains(r.Header.Get("Accept"), "application/vnd.pypi.simple.v1+json") {
		var fs []map[string]any
		var versions []string
		for _, f := range files {
			m := map[string]any{
				"filename": f.filename, "url": base + "/files/" + f.filename,
				"hashes": map[string]string{"sha256": sha(f.wheel)}, "size": len(f.wheel),
				"upload-time": uploadTime(f.rel),
				"_private":    "kept",
			}
			if f.rel.RequiresPython != "" {
				m["requires-python"] = f.rel.RequiresPython
			}
			if f.rel.Yanked != "" {
				m["yanked"] = f.rel.Yanked
			}
			if !f.noMeta {
				m["core-metadata"] = map[string]string{"sha256": sha(f.metadata)}
			}
			fs = append(fs, m)
			versions = append(versions, f.rel.Version)
		}
		w.Header().Set("Content-Type", "application/vnd.pypi.simple.v1+json")
		json.NewEncoder(w).Encode(map[string]any{"meta": map[string]any{"api-version": "1.1", "_last-serial": serial},
			"name": name, "versions": versions, "files": fs})
		return
	}
	w.Header().Set("Content-Type", "text/html")
	fmt.Fprintf(w, "<!DOCTYPE html><html><head><meta name=\"pypi:repository-version\" content=\"1.0\"></head><body><h1>Links for %s</h1>\n", name)
	for _, f := range files {
		attrs := ""
		if f.rel.RequiresPython != "" {
			attrs += ` data-requires-python="` + html.EscapeString(f.rel.RequiresPython) + `"`
		}
		if f.rel.Yanked != "" {
			attrs += ` data-yanked="` + html.EscapeString(f.rel.Yanked) + `"`
		}
		if !f.noMeta {
			attrs += ` data-dist-info-metadata="sha256=` + sha(f.metadata) + `" data-core-metadata="sha256=` + sha(f.metadata) + `"`
		}
		// Relative URL: resolved against the page's URL.
		fmt.Fprintf(w, "<a href=\"../../files/%s#sha256=%s\"%s>%s</a><br>\n", f.filename, sha(f.wheel), attrs, f.filename)
	}
	fmt.Fprint(w, "</body></html>\n")
}

func (s *Server) serveFile(w http.ResponseWriter, r *http.Request, name string) {
	meta := strings.HasSuffix(name, ".metadata")
	s.mu.Lock()
	f, ok := s.files[strings.TrimSuffix(name, ".metadata")]
	corrupt := s.corrupt[strings.TrimSuffix(name, ".metadata")]
	delay := s.delay
	s.mu.Unlock()
	if !ok || (meta && f.noMeta) {
		http.NotFound(w, r)
		return
	}
	body := f.wheel
	if meta {
		body = f.metadata
	}
	if corrupt {
		body = append([]byte{}, body...)
		body[len(body)/2] ^= 0xff
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	if r.Method == http.MethodHead {
		return
	}
	fakeserver.WriteBody(w, body, delay)
}

func uploadTime(r Release) string {
	if r.Uploaded.IsZero() {
		return "2024-01-01T00:00:00.000000Z"
	}
	return r.Uploaded.UTC().Format("2006-01-02T15:04:05.000000Z")
}
