// Package fakemaven is a local Maven repository for tests, like Central:
// generated artifacts (a pom and a jar per version, with dependencies),
// optionally a directory tree served as it is (Debian's
// /usr/share/maven-repo, whose plugins let a real mvn run offline; its
// symlinks followed), .sha1 and .md5 beside every file, and
// maven-metadata.xml made from the versions present; controls to publish,
// corrupt and count requests.
package fakemaven

import (
	"archive/zip"
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	mrand "math/rand"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/fakeserver"
)

// Dep is a dependency of an artifact.
type Dep struct{ Group, Artifact, Version string }

// Artifact is one version of an artifact.
type Artifact struct {
	Group, Artifact, Version string
	Deps                     []Dep
	// Size pads the jar with this many incompressible bytes.
	Size int
	// Time is the files' Last-Modified (zero: a fixed date).
	Time time.Time
}

// Server is the fake repository.
type Server struct {
	mu      sync.Mutex
	files   map[string][]byte    // path → bytes (generated)
	times   map[string]time.Time // path → Last-Modified
	corrupt map[string]bool
	dir     string // served as it is ("" : none)
	fakeserver.Server
}

// New returns a repository with com.example:lib-a:1.0 (which depends on
// com.example:lib-b:1.0), lib-b 1.0, and lib-a 1.1; dir, when not "",
// is served too (files the generated ones do not have).
func New(dir string) *Server {
	s := &Server{files: map[string][]byte{}, times: map[string]time.Time{}, corrupt: map[string]bool{}, dir: dir}
	s.Publish(Artifact{Group: "com.example", Artifact: "lib-b", Version: "1.0"})
	s.Publish(Artifact{Group: "com.example", Artifact: "lib-a", Version: "1.0", Deps: []Dep{{"com.example", "lib-b", "1.0"}}})
	s.Publish(Artifact{Group: "com.example", Artifact: "lib-a", Version: "1.1", Deps: []Dep{{"com.example", "lib-b", "1.0"}}})
	return s
}

// Base is the directory path of group:artifact.
func Base(group, artifact string) string { return strings.ReplaceAll(group, ".", "/") + "/" + artifact }

// JarPath is the path of an artifact version's jar.
func JarPath(group, artifact, version string) string {
	return Base(group, artifact) + "/" + version + "/" + artifact + "-" + version + ".jar"
}

// Publish adds an artifact version (pom and jar).
func (s *Server) Publish(a Artifact) {
	if a.Time.IsZero() {
		a.Time = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	}
	var deps strings.Builder
	for _, d := range a.Deps {
		fmt.Fprintf(&deps, "    <dependency><groupId>%s</groupId><artifactId>%s</artifactId><version>%s</version></dependency>\n", d.Group, d.Artifact, d.Version)
	}
	pom := fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>%s</groupId>
  <artifactId>%s</artifactId>
  <version>%s</version>
  <packaging>jar</packaging>
  <dependencies>
%s  </dependencies>
</project>
`, a.Group, a.Artifact, a.Version, deps.String())
	var jb bytes.Buffer
	zw := zip.NewWriter(&jb)
	w, _ := zw.Create("META-INF/MANIFEST.MF")
	fmt.Fprintf(w, "Manifest-Version: 1.0\nImplementation-Title: %s\nImplementation-Version: %s\n", a.Artifact, a.Version)
	if a.Size > 0 {
		pad := make([]byte, a.Size)
		mrand.New(mrand.NewSource(int64(len(a.Artifact)))).Read(pad)
		w, _ := zw.CreateHeader(&zip.FileHeader{Name: "pad.bin", Method: zip.Store})
		w.Write(pad)
	}
	zw.Close()
	dir := Base(a.Group, a.Artifact) + "/" + a.Version + "/" + a.Artifact + "-" + a.Version
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[dir+".pom"] = []byte(pom)
	s.files[dir+".jar"] = jb.Bytes()
	s.times[dir+".pom"], s.times[dir+".jar"] = a.Time, a.Time
}

// File is the bytes of a generated file.
func (s *Server) File(path string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.files[path]
}

// Corrupt makes the file at path answer other bytes (its .sha1 still its
// own), or its own again.
func (s *Server) Corrupt(path string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.corrupt[path] = on
}

// URL is the repository's base URL.
func (s *Server) URL() string { return "http://" + s.Addr() }

// Start serves on addr.
func (s *Server) Start(addr string) error { return s.Server.Start(addr, http.HandlerFunc(s.serve)) }

// read returns a file's bytes and time: generated, else from dir.
func (s *Server) read(path string) ([]byte, time.Time, bool) {
	s.mu.Lock()
	b, ok := s.files[path]
	t := s.times[path]
	s.mu.Unlock()
	if ok {
		return b, t, true
	}
	if s.dir == "" || strings.Contains(path, "..") {
		return nil, time.Time{}, false
	}
	full := filepath.Join(s.dir, filepath.FromSlash(path))
	fi, err := os.Stat(full) // follows symlinks, as Debian's tree needs
	if err != nil || fi.IsDir() {
		return nil, time.Time{}, false
	}
	b, err = os.ReadFile(full)
	return b, fi.ModTime(), err == nil
}

// versions lists the versions of the artifact whose directory is base.
func (s *Server) versions(base string) []string {
	seen := map[string]bool{}
	s.mu.Lock()
	for p := range s.files {
		if rest, ok := strings.CutPrefix(p, base+"/"); ok && strings.Count(rest, "/") == 1 {
			seen[rest[:strings.IndexByte(rest, '/')]] = true
		}
	}
	s.mu.Unlock()
	if s.dir != "" {
		if ents, err := os.ReadDir(filepath.Join(s.dir, filepath.FromSlash(base))); err == nil {
			for _, e := range ents {
				if fi, err := os.Stat(filepath.Join(s.dir, filepath.FromSlash(base), e.Name())); err == nil && fi.IsDir() {
					seen[e.Name()] = true
				}
			}
		}
	}
	var out []string
	for v := range seen {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

func (s *Server) metadata(base string) ([]byte, bool) {
	vs := s.versions(base)
	if len(vs) == 0 {
		return nil, false
	}
	i := strings.LastIndexByte(base, '/')
	var b strings.Builder
	fmt.Fprintf(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<metadata>\n  <groupId>%s</groupId>\n  <artifactId>%s</artifactId>\n  <versioning>\n    <latest>%s</latest>\n    <release>%s</release>\n    <versions>\n",
		strings.ReplaceAll(base[:i], "/", "."), base[i+1:], vs[len(vs)-1], vs[len(vs)-1])
	for _, v := range vs {
		fmt.Fprintf(&b, "      <version>%s</version>\n", v)
	}
	b.WriteString("    </versions>\n    <lastUpdated>20240102030405</lastUpdated>\n  </versioning>\n</metadata>\n")
	return []byte(b.String()), true
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimPrefix(r.URL.Path, "/")
	file, alg := p, ""
	for _, a := range []string{".sha1", ".md5"} {
		if strings.HasSuffix(p, a) {
			file, alg = strings.TrimSuffix(p, a), a
		}
	}
	var b []byte
	var t time.Time
	var ok bool
	if base, isMeta := strings.CutSuffix(file, "/maven-metadata.xml"); isMeta {
		if b, t, ok = s.read(file); !ok {
			b, ok = s.metadata(base)
			t = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
		}
	} else {
		b, t, ok = s.read(file)
	}
	if !ok {
		http.NotFound(w, r)
		return
	}
	switch alg {
	case ".sha1":
		sum := sha1.Sum(b)
		b = []byte(hex.EncodeToString(sum[:]))
	case ".md5":
		sum := md5.Sum(b)
		b = []byte(hex.EncodeToString(sum[:]))
	default:
		s.mu.Lock()
		corrupt := s.corrupt[file]
		s.mu.Unlock()
		if corrupt {
			b = append([]byte(nil), b...)
			b[len(b)/2] ^= 0xff
		}
	}
	w.Header().Set("Last-Modified", t.UTC().Format(http.TimeFormat))
	w.Header().Set("Content-Length", fmt.Sprint(len(b)))
	w.Write(b)
}
