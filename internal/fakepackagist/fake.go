// Package fakepackagist is a local upstream shaped like Packagist for
// tests: a root with every key Packagist sends (absolute and path-absolute
// URLs), minified p2 and ~dev files with Last-Modified and gzip, zip dists
// with sha1 shasums, GitHub-style zipball URLs that redirect to a codeload
// path (empty shasum), and controls to stop it, publish versions, corrupt
// dists and count requests.
package fakepackagist

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand"
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/fakeserver"
)

// Version is one package version.
type Version struct {
	Version    string // "1.0.0", "dev-main", "dev-feature/x", "1.x-dev"
	Normalized string
	Ref        string
	Require    map[string]string
	// GitHub serves the dist through the redirecting zipball route, with an
	// empty shasum, like Packagist does for GitHub-hosted packages.
	GitHub bool
	// NoDist makes a source-only version.
	NoDist bool
	// Size pads the zip with incompressible bytes.
	Size int
	// Time is the version's release time (default 2024-01-01).
	Time time.Time
}

// Server is the fake upstream.
type Server struct {
	mu       sync.Mutex
	pkgs     map[string][]Version
	zips     map[string][]byte // dist path → bytes
	corrupt  map[string]bool
	modified map[string]time.Time // p2 file → Last-Modified
	ims      map[string]int
	delay    time.Duration

	fakeserver.Server // listener, Stop, Addr, Hits
}

// New returns a server with a standard catalogue (see Catalogue).
func New() *Server { return NewWith(Catalogue()) }

// NewWith returns a server with the given catalogue.
func NewWith(cat map[string][]Version) *Server {
	s := &Server{pkgs: map[string][]Version{}, zips: map[string][]byte{}, corrupt: map[string]bool{},
		modified: map[string]time.Time{}, ims: map[string]int{}}
	for name, vs := range cat {
		s.pkgs[name] = vs
	}
	return s
}

// Catalogue: acme/foo (stable versions, one source-only, depends on
// acme/bar), acme/bar (GitHub-style redirecting dist), acme/devpkg (dev
// branches, one with a slash and a non-hex reference), acme/huge (300
// versions), acme/big (a dist of several MB), acme/big2 (another).
func Catalogue() map[string][]Version {
	ref := func(s string) string { h := sha1.Sum([]byte(s)); return hex.EncodeToString(h[:]) }
	huge := []Version{}
	for i := 0; i < 300; i++ {
		v := fmt.Sprintf("1.%d.%d", i/10, i%10)
		huge = append(huge, Version{Version: v, Ref: ref("huge" + v)})
	}
	return map[string][]Version{
		"acme/foo": {
			{Version: "0.9.0", Ref: ref("foo0.9"), NoDist: true},
			{Version: "1.0.0", Ref: ref("foo1.0"), Require: map[string]string{"acme/bar": "^1.0"}},
			{Version: "1.1.0", Ref: ref("foo1.1"), Require: map[string]string{"acme/bar": "^1.0"}},
		},
		"acme/bar": {
			{Version: "1.0.0", Ref: ref("bar1.0"), GitHub: true},
			{Version: "1.0.1", Ref: ref("bar1.0.1"), GitHub: true},
		},
		"acme/devpkg": {
			{Version: "1.0.0", Ref: ref("dev1.0")},
			{Version: "dev-main", Ref: ref("devmain")},
			{Version: "dev-feature/x", Normalized: "dev-feature/x", Ref: "feature/x@r17"},
			{Version: "1.x-dev", Normalized: "1.9999999.9999999.9999999-dev", Ref: ref("dev1x")},
		},
		"acme/huge": huge,
		"acme/big":  {{Version: "1.0.0", Ref: ref("big1"), Size: 6 << 20}},
		"acme/big2": {{Version: "1.0.0", Ref: ref("big2"), Size: 6 << 20}},
	}
}

func normalize(v Version) string {
	if v.Normalized != "" {
		return v.Normalized
	}
	if strings.HasPrefix(v.Version, "dev-") {
		return v.Version
	}
	return v.Version + ".0"
}

func isDev(v Version) bool {
	return strings.HasPrefix(v.Version, "dev-") || strings.HasSuffix(v.Version, "-dev")
}

// Start listens on addr ("127.0.0.1:0" for a free port) and serves.
func (s *Server) Start(addr string) error { return s.Server.Start(addr, s) }

// Addr is host:port; URL the base URL.
func (s *Server) URL() string { return "http://" + s.Addr() }

// Publish adds a version to a package (a new release upstream).
func (s *Server) Publish(name string, v Version) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pkgs[name] = append(s.pkgs[name], v)
	for _, f := range []string{name + ".json", name + "~dev.json"} {
		next := time.Now().UTC().Truncate(time.Second)
		if old, ok := s.modified[f]; ok && !next.After(old) {
			next = old.Add(time.Second)
		}
		s.modified[f] = next
	}
}

// Unpublish takes a version down (it leaves the p2 files).
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
	for _, f := range []string{name + ".json", name + "~dev.json"} {
		s.modified[f] = s.modified[f].Add(time.Second)
	}
}

// Corrupt makes the dist of name@version serve wrong bytes (or heal again).
func (s *Server) Corrupt(name, version string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.corrupt[name+"/"+version] = on
}

// SetDelay slows every file response down (to widen race windows).
func (s *Server) SetDelay(d time.Duration) { s.mu.Lock(); s.delay = d; s.mu.Unlock() }

// Hits is how many requests a path received; HitsPrefix sums over paths
// with the prefix; IMS counts conditional requests to a path.

// Zip returns the dist bytes of name@version as the upstream serves them.
func (s *Server) Zip(name, version string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range s.pkgs[name] {
		if v.Version == version {
			return s.zipLocked(name, v)
		}
	}
	return nil
}

func (s *Server) zipLocked(name string, v Version) []byte {
	key := name + "/" + v.Version
	if b, ok := s.zips[key]; ok {
		return b
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	mod := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	add := func(path string, body []byte, method uint16) {
		w, _ := zw.CreateHeader(&zip.FileHeader{Name: path, Method: method, Modified: mod})
		w.Write(body)
	}
	dir := strings.ReplaceAll(name, "/", "-") + "-" + v.Ref[:min(7, len(v.Ref))] + "/"
	cj, _ := json.MarshalIndent(map[string]any{"name": name, "autoload": map[string]any{"psr-4": map[string]string{"Acme\\": "src/"}}}, "", "  ")
	add(dir+"composer.json", cj, zip.Deflate)
	add(dir+"src/Version.php", []byte(fmt.Sprintf("<?php\n// %s %s\n", name, v.Version)), zip.Deflate)
	if v.Size > 0 {
		pad := make([]byte, v.Size)
		rand.New(rand.NewSource(int64(len(name) + v.Size))).Read(pad)
		add(dir+"data.bin", pad, zip.Store)
	}
	zw.Close()
	s.zips[key] = buf.Bytes()
	return buf.Bytes()
}

func sha1hex(b []byte) string { h := sha1.Sum(b); return hex.EncodeToString(h[:]) }

func (s *Server) distPath(name string, v Version) string {
	if v.GitHub {
		return "/gh/repos/" + name + "/zipball/" + v.Ref
	}
	return "/dist/" + name + "/" + strings.ReplaceAll(normalize(v), "/", "_") + ".zip"
}

func (s *Server) versionObject(base, name string, v Version) map[string]any {
	o := map[string]any{
		"name": name, "version": v.Version, "version_normalized": normalize(v),
		"type": "library", "license": []string{"MIT"},
		"time":     releaseTime(v),
		"source":   map[string]any{"type": "git", "url": "https://example.invalid/" + name + ".git", "reference": v.Ref},
		"autoload": map[string]any{"psr-4": map[string]string{"Acme\\": "src/"}},
	}
	if !v.NoDist {
		shasum := sha1hex(s.zipLocked(name, v))
		if v.GitHub {
			shasum = ""
		}
		o["dist"] = map[string]any{"type": "zip", "url": base + s.distPath(name, v), "reference": v.Ref, "shasum": shasum}
	}
	if len(v.Require) > 0 {
		o["require"] = v.Require
	}
	return o
}

// minify writes Composer's minified form: the first version whole, then
// only the keys that changed, "__unset" for removed ones.
func minify(list []map[string]any) []map[string]any {
	out := make([]map[string]any, 0, len(list))
	var prev map[string]any
	for _, v := range list {
		if prev == nil {
			out = append(out, v)
			prev = v
			continue
		}
		d := map[string]any{}
		for k, val := range v {
			if pv, ok := prev[k]; !ok || !reflect.DeepEqual(pv, val) {
				d[k] = val
			}
		}
		for k := range prev {
			if _, ok := v[k]; !ok {
				d[k] = "__unset"
			}
		}
		out = append(out, d)
		prev = v
	}
	return out
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if r.Header.Get("If-Modified-Since") != "" {
		s.ims[r.URL.Path]++
	}
	delay := s.delay
	s.mu.Unlock()
	base := "http://" + r.Host
	p := r.URL.Path
	switch {
	case p == "/packages.json":
		s.json(w, r, "packages.json", map[string]any{
			"packages":             []any{},
			"notify-batch":         base + "/downloads/",
			"metadata-url":         "/p2/%package%.json",
			"metadata-changes-url": base + "/metadata/changes.json",
			"search":               base + "/search.json?q=%query%&type=%type%",
			"list":                 base + "/packages/list.json",
			"providers-api":        base + "/providers/%package%.json",
			"providers-url":        "/p/%package%$%hash%.json",
			"provider-includes":    map[string]any{"p/provider-latest$%hash%.json": map[string]string{"sha256": "x"}},
			"security-advisories":  map[string]any{"metadata": true, "api-url": base + "/api/security-advisories/"},
		})
	case strings.HasPrefix(p, "/p2/") && strings.HasSuffix(p, ".json"):
		file := strings.TrimPrefix(p, "/p2/")
		name := strings.TrimSuffix(strings.TrimSuffix(file, ".json"), "~dev")
		dev := strings.HasSuffix(file, "~dev.json")
		s.mu.Lock()
		vs, ok := s.pkgs[name]
		var list []map[string]any
		for i := len(vs) - 1; i >= 0; i-- { // newest first, like Packagist
			if isDev(vs[i]) == dev {
				list = append(list, s.versionObject(base, name, vs[i]))
			}
		}
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		s.json(w, r, file, map[string]any{"minified": "composer/2.0", "packages": map[string]any{name: minify(list)},
			"security-advisories": []any{}})
	case strings.HasPrefix(p, "/gh/repos/"):
		// /gh/repos/{o}/{r}/zipball/{ref} → 302 → /codeload/{o}/{r}/legacy.zip/{ref}
		rest := strings.TrimPrefix(p, "/gh/repos/")
		parts := strings.Split(rest, "/")
		if len(parts) != 4 || parts[2] != "zipball" {
			http.NotFound(w, r)
			return
		}
		http.Redirect(w, r, "/codeload/"+parts[0]+"/"+parts[1]+"/legacy.zip/"+parts[3], http.StatusFound)
	case strings.HasPrefix(p, "/codeload/") || strings.HasPrefix(p, "/dist/"):
		s.serveZip(w, r, delay)
	case p == "/api/security-advisories/":
		// As Packagist: packages[]=a/b or Composer's packages[0]=a/b.
		_ = r.ParseForm()
		adv := map[string]any{}
		for k, vs := range r.PostForm {
			if k != "packages[]" && !strings.HasPrefix(k, "packages[") {
				continue
			}
			for _, n := range vs {
				adv[n] = []any{}
				if n == AdvisedPackage {
					adv[n] = []any{map[string]any{"advisoryId": AdvisoryID, "packageName": n, "remoteId": "GHSA-test-0001-0001",
						"title": "Test advisory for " + n, "link": "https://example.test/advisories/" + AdvisoryID, "cve": "CVE-2099-0001",
						"affectedVersions": ">=1.0.0,<2.0.0", "source": "GitHub", "reportedAt": "2024-01-01 00:00:00",
						"composerRepository": "https://packagist.org", "severity": "high",
						"sources": []any{map[string]any{"name": "GitHub", "remoteId": "GHSA-test-0001-0001"}}}}
				}
			}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"advisories": adv})
	default:
		http.NotFound(w, r)
	}
}

// AdvisedPackage has a security advisory, AdvisoryID, affecting its 1.x
// versions.
const (
	AdvisedPackage = "acme/foo"
	AdvisoryID     = "PKSA-test-0001"
)

func (s *Server) serveZip(w http.ResponseWriter, r *http.Request, delay time.Duration) {
	s.mu.Lock()
	var body []byte
	var corrupt bool
	for name, vs := range s.pkgs {
		for _, v := range vs {
			path := s.distPath(name, v)
			if v.GitHub {
				path = "/codeload/" + name + "/legacy.zip/" + v.Ref
			}
			if path == r.URL.Path {
				body = s.zipLocked(name, v)
				corrupt = s.corrupt[name+"/"+v.Version]
			}
		}
	}
	s.mu.Unlock()
	if body == nil {
		http.NotFound(w, r)
		return
	}
	if corrupt {
		body = append([]byte{}, body...)
		body[len(body)/2] ^= 0xff
	}
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	fakeserver.WriteBody(w, body, delay)
}

func (s *Server) json(w http.ResponseWriter, r *http.Request, file string, v any) {
	body, _ := json.Marshal(v)
	s.mu.Lock()
	mod, ok := s.modified[file]
	if !ok {
		mod = time.Now().UTC().Truncate(time.Second)
		s.modified[file] = mod
	}
	s.mu.Unlock()
	if ims, err := http.ParseTime(r.Header.Get("If-Modified-Since")); err == nil && !mod.After(ims) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Last-Modified", mod.Format(http.TimeFormat))
	w.Header().Set("Content-Type", "application/json")
	// With a Content-Length, as a static file server sends (a caching
	// proxy in front may then send it on too).
	if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		w.Header().Set("Content-Encoding", "gzip")
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(body)
		zw.Close()
		body = buf.Bytes()
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}

// Names lists the catalogue's package names.
func (s *Server) Names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n []string
	for k := range s.pkgs {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

func releaseTime(v Version) string {
	if v.Time.IsZero() {
		return "2024-01-01T00:00:00+00:00"
	}
	return v.Time.UTC().Format("2006-01-02T15:04:05+00:00")
}
