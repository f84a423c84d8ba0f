// Package fakeconda is a local upstream shaped like a conda channel for
// tests: subdirs with repodata.json (plain, .zst, .bz2),
// current_repodata.json, channeldata.json, CEP-16 sharded repodata, and
// .conda and .tar.bz2 packages built in memory (with info/index.json, as
// conda-build writes them). It can put its packages and shards behind
// absolute base URLs (a CDN path), corrupt a file and count requests.
package fakeconda

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mrand "math/rand"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/dsnet/compress/bzip2"
	"github.com/klauspost/compress/zstd"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/mirror-proxy/mirror-proxy/internal/fakeserver"
)

// Package is one package build.
type Package struct {
	Name, Version, Build, Subdir string
	Depends                      []string
	Time                         time.Time
	// Format is "conda" (default) or "tar.bz2".
	Format string
	// Size pads the package with this many incompressible bytes.
	Size int
}

// Filename is name-version-build.<format>.
func (p Package) Filename() string {
	f := p.Format
	if f == "" {
		f = "conda"
	}
	return p.Name + "-" + p.Version + "-" + p.Build + "." + f
}

// Index is the package's info/index.json.
func (p Package) Index() map[string]any {
	deps := p.Depends
	if deps == nil {
		deps = []string{}
	}
	return map[string]any{"name": p.Name, "version": p.Version, "build": p.Build, "build_number": 0,
		"depends": deps, "subdir": p.Subdir, "license": "MIT", "timestamp": p.Time.UnixMilli()}
}

// Server is the fake channel.
type Server struct {
	mu      sync.Mutex
	pkgs    []Package
	files   map[string][]byte // subdir/filename → bytes
	corrupt map[string]bool
	// shardCache holds the built shards until the next Publish.
	shardCache map[string]shardSet
	// AbsoluteBase puts packages and shards under /cdn/<subdir>/, named
	// by absolute base_url and shards_base_url.
	AbsoluteBase bool

	fakeserver.Server
}

// New returns a channel: noarch pyapp 1.0 (depends on libdep >=1.1),
// libdep 1.0 (.tar.bz2) and 1.1 (.conda); linux-64 tool 2.0.
func New() *Server {
	s := &Server{files: map[string][]byte{}, corrupt: map[string]bool{}}
	t := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	s.Publish(Package{Name: "libdep", Version: "1.0", Build: "0", Subdir: "noarch", Format: "tar.bz2", Time: t})
	s.Publish(Package{Name: "libdep", Version: "1.1", Build: "0", Subdir: "noarch", Time: t.AddDate(0, 1, 0)})
	s.Publish(Package{Name: "pyapp", Version: "1.0", Build: "py_0", Subdir: "noarch", Depends: []string{"libdep >=1.1"}, Time: t.AddDate(0, 2, 0)})
	s.Publish(Package{Name: "tool", Version: "2.0", Build: "h1234_0", Subdir: "linux-64", Time: t})
	return s
}

// Publish adds a package.
func (s *Server) Publish(p Package) {
	b := Build(p)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pkgs = append(s.pkgs, p)
	s.files[p.Subdir+"/"+p.Filename()] = b
	s.shardCache = nil
}

// Remove takes a package down (its record leaves the repodata and the
// shards; the file stays, as channels keep serving it for a while).
func (s *Server) Remove(subdir, filename string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := s.pkgs[:0:0]
	for _, p := range s.pkgs {
		if p.Subdir != subdir || p.Filename() != filename {
			ps = append(ps, p)
		}
	}
	s.pkgs = ps
	s.shardCache = nil
}

// File is a package's bytes.
func (s *Server) File(subdir, filename string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.files[subdir+"/"+filename]
}

// Corrupt makes a package answer other bytes (on) or its own again.
func (s *Server) Corrupt(subdir, filename string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.corrupt[subdir+"/"+filename] = on
}

// URL is the channel's URL.
func (s *Server) URL() string { return "http://" + s.Addr() }

// Start serves on addr.
func (s *Server) Start(addr string) error { return s.Server.Start(addr, http.HandlerFunc(s.serve)) }

// record is a package's repodata record.
func (s *Server) record(p Package) map[string]any {
	b := s.files[p.Subdir+"/"+p.Filename()]
	sum, m := sha256.Sum256(b), md5.Sum(b)
	r := p.Index()
	r["sha256"], r["md5"], r["size"] = hex.EncodeToString(sum[:]), hex.EncodeToString(m[:]), len(b)
	return r
}

// Repodata is subdir's repodata.json.
func (s *Server) Repodata(subdir string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	info := map[string]any{"subdir": subdir}
	if s.AbsoluteBase {
		info["base_url"] = s.URL() + "/cdn/" + subdir + "/"
	}
	doc := map[string]any{"info": info, "packages": map[string]any{}, "packages.conda": map[string]any{}, "removed": []string{}, "repodata_version": 1}
	for _, p := range s.pkgs {
		if p.Subdir != subdir {
			continue
		}
		k := "packages.conda"
		if strings.HasSuffix(p.Filename(), ".tar.bz2") {
			k = "packages"
		}
		doc[k].(map[string]any)[p.Filename()] = s.record(p)
	}
	b, _ := json.Marshal(doc)
	return b
}

type shardSet struct {
	index []byte
	files map[string][]byte
}

// shards is subdir's shard index and shards (by hex sha256), built once
// per state of the channel (map order would change their hashes).
func (s *Server) shards(subdir string) ([]byte, map[string][]byte) {
	s.mu.Lock()
	if c, ok := s.shardCache[subdir]; ok {
		s.mu.Unlock()
		return c.index, c.files
	}
	s.mu.Unlock()
	index, files := s.buildShards(subdir)
	s.mu.Lock()
	if s.shardCache == nil {
		s.shardCache = map[string]shardSet{}
	}
	s.shardCache[subdir] = shardSet{index, files}
	s.mu.Unlock()
	return index, files
}

func (s *Server) buildShards(subdir string) ([]byte, map[string][]byte) {
	s.mu.Lock()
	byName := map[string]map[string]map[string]any{}
	for _, p := range s.pkgs {
		if p.Subdir != subdir {
			continue
		}
		if byName[p.Name] == nil {
			byName[p.Name] = map[string]map[string]any{"packages": {}, "packages.conda": {}}
		}
		r := s.record(p)
		sum, _ := hex.DecodeString(r["sha256"].(string))
		m, _ := hex.DecodeString(r["md5"].(string))
		r["sha256"], r["md5"] = sum, m
		k := "packages.conda"
		if strings.HasSuffix(p.Filename(), ".tar.bz2") {
			k = "packages"
		}
		byName[p.Name][k][p.Filename()] = r
	}
	abs := s.AbsoluteBase
	s.mu.Unlock()
	files := map[string][]byte{}
	index := map[string][]byte{}
	for name, shard := range byName {
		z := zstdBytes(sortedMsgpack(shard))
		sum := sha256.Sum256(z)
		files[hex.EncodeToString(sum[:])] = z
		index[name] = sum[:]
	}
	info := map[string]any{"subdir": subdir, "base_url": "./", "shards_base_url": "./shards/"}
	if abs {
		info["base_url"] = s.URL() + "/cdn/" + subdir + "/"
		info["shards_base_url"] = s.URL() + "/cdn/" + subdir + "/shards/"
	}
	return zstdBytes(sortedMsgpack(map[string]any{"version": 1, "info": info, "shards": index})), files
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimPrefix(r.URL.Path, "/")
	if p == "channeldata.json" {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"channeldata_version":1,"packages":{},"subdirs":["linux-64","noarch"]}`))
		return
	}
	cdn := false
	if rest, ok := strings.CutPrefix(p, "cdn/"); ok {
		p, cdn = rest, true
	}
	subdir, file, ok := strings.Cut(p, "/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	s.mu.Lock()
	abs := s.AbsoluteBase
	s.mu.Unlock()
	var body []byte
	switch {
	case !cdn && file == "repodata.json", !cdn && file == "current_repodata.json":
		body = s.Repodata(subdir)
	case !cdn && file == "repodata.json.zst":
		body = zstdBytes(s.Repodata(subdir))
	case !cdn && file == "repodata.json.bz2":
		body = bz2Bytes(s.Repodata(subdir))
	case !cdn && file == "repodata_shards.msgpack.zst":
		body, _ = s.shards(subdir)
	case strings.HasPrefix(file, "shards/") && cdn == abs:
		_, files := s.shards(subdir)
		body = files[strings.TrimSuffix(strings.TrimPrefix(file, "shards/"), ".msgpack.zst")]
	case cdn == abs:
		s.mu.Lock()
		body = s.files[subdir+"/"+file]
		if body != nil && s.corrupt[subdir+"/"+file] {
			body = append([]byte(nil), body...)
			body[len(body)/2] ^= 0xff
		}
		s.mu.Unlock()
	}
	if body == nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.Write(body)
}

// sortedMsgpack encodes v with map keys sorted: a shard's name is its
// hash, so the same shard must encode to the same bytes every time.
func sortedMsgpack(v any) []byte {
	var b bytes.Buffer
	enc := msgpack.NewEncoder(&b)
	enc.SetSortMapKeys(true)
	_ = enc.Encode(v)
	return b.Bytes()
}

func zstdBytes(b []byte) []byte {
	enc, _ := zstd.NewWriter(nil)
	defer enc.Close()
	return enc.EncodeAll(b, nil)
}

func bz2Bytes(b []byte) []byte {
	var out bytes.Buffer
	w, _ := bzip2.NewWriter(&out, nil)
	w.Write(b)
	w.Close()
	return out.Bytes()
}

func tarOf(files map[string][]byte) []byte {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, n := range names {
		tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), ModTime: time.Unix(1700000000, 0), Typeflag: tar.TypeReg})
		tw.Write(files[n])
	}
	tw.Close()
	return b.Bytes()
}

// Build makes the package file: a .conda (a zip of metadata.json and
// zstd tars of info/ and the payload) or a .tar.bz2.
func Build(p Package) []byte {
	index, _ := json.Marshal(p.Index())
	info := map[string][]byte{"info/index.json": index, "info/paths.json": []byte(`{"paths":[],"paths_version":1}`)}
	payload := map[string][]byte{"share/" + p.Name + "/VERSION": []byte(p.Version + "\n")}
	if p.Size > 0 {
		pad := make([]byte, p.Size)
		mrand.New(mrand.NewSource(int64(p.Size))).Read(pad)
		payload["share/"+p.Name+"/pad.bin"] = pad
	}
	if p.Format == "tar.bz2" {
		all := map[string][]byte{}
		for k, v := range info {
			all[k] = v
		}
		for k, v := range payload {
			all[k] = v
		}
		return bz2Bytes(tarOf(all))
	}
	stem := strings.TrimSuffix(p.Filename(), ".conda")
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, f := range []struct {
		name string
		body []byte
	}{
		{"metadata.json", []byte(`{"conda_pkg_format_version": 2}`)},
		{"pkg-" + stem + ".tar.zst", zstdBytes(tarOf(payload))},
		{"info-" + stem + ".tar.zst", zstdBytes(tarOf(info))},
	} {
		w, _ := zw.CreateHeader(&zip.FileHeader{Name: f.name, Method: zip.Store})
		w.Write(f.body)
	}
	zw.Close()
	return b.Bytes()
}
