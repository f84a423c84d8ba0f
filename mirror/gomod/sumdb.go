package gomod

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/dirhash"
	"golang.org/x/mod/sumdb/note"
	modzip "golang.org/x/mod/zip"

	"github.com/mirror-proxy/mirror-proxy/fetch"
	"github.com/mirror-proxy/mirror-proxy/httpx"
)

// SumDB is a checksum database a mirror serves and checks against, as
// MIRRORS gives it: {"key": "<verifier key, as GOSUMDB takes it>", "url":
// "<its URL>"}.
type SumDB struct {
	Key string `json:"key"`
	URL string `json:"url"`
}

// DefaultSumDB is sum.golang.org, as the go command knows it.
var DefaultSumDB = SumDB{Key: "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8", URL: "https://sum.golang.org"}

// Options are a Go mirror's own settings in MIRRORS.
type Options struct {
	// SumDB are the checksum databases served under /sumdb/<name>/ and
	// checked before a .mod or .zip is stored (default: sum.golang.org).
	SumDB []SumDB `json:"sumdb"`
	// NoSumCheck are module path patterns (GONOSUMDB's form) whose files
	// are checked as zips only.
	NoSumCheck []string `json:"noSumCheck"`
}

// ParseOptions reads and checks a Go mirror's options.
func ParseOptions(opts map[string]json.RawMessage) (Options, error) {
	var o Options
	if raw, ok := opts["sumdb"]; ok {
		if err := json.Unmarshal(raw, &o.SumDB); err != nil {
			return o, fmt.Errorf("sumdb: not a list of {\"key\", \"url\"}: %v", err)
		}
	} else {
		o.SumDB = []SumDB{DefaultSumDB}
	}
	if raw, ok := opts["noSumCheck"]; ok {
		if err := json.Unmarshal(raw, &o.NoSumCheck); err != nil {
			return o, fmt.Errorf("noSumCheck: not a list of module path patterns: %v", err)
		}
	}
	seen := map[string]bool{}
	for _, db := range o.SumDB {
		v, err := note.NewVerifier(db.Key)
		if err != nil {
			return o, fmt.Errorf("sumdb: key %q: %v", db.Key, err)
		}
		if !strings.HasPrefix(db.URL, "http://") && !strings.HasPrefix(db.URL, "https://") {
			return o, fmt.Errorf("sumdb: url of %s: %q is not an http(s) URL", v.Name(), db.URL)
		}
		if seen[v.Name()] {
			return o, fmt.Errorf("sumdb: %s given twice", v.Name())
		}
		seen[v.Name()] = true
	}
	return o, nil
}

// checksumDB is one database: its routes' upstream and the verifier the
// mirror checks downloads with (golang.org/x/mod/sumdb's client, which
// checks signed tree heads and inclusion proofs).
type checksumDB struct {
	name, url string
	gm        *goMirror
	client    *sumdb.Client
	ops       *sumOps
}

func newChecksumDB(gm *goMirror, db SumDB) *checksumDB {
	v, _ := note.NewVerifier(db.Key)
	m := gm.m
	m.URL = strings.TrimRight(db.URL, "/") // its own host is the one allowed
	m.Auth = nil                           // the upstream's credentials are not the database's
	c := &checksumDB{name: v.Name(), url: m.URL, gm: gm}
	c.ops = &sumOps{db: c, key: db.Key, httpClient: fetch.NewClient(gm.env.Core.UpstreamTimeout(), m, fetch.ClientOptions{})}
	c.client = sumdb.NewClient(c.ops)
	return c
}

// read returns what the database serves at path ("/lookup/...",
// "/tile/...", "/latest") through the core: kept in storage, served stale
// when the database is down. Lookups and full tiles never change.
func (c *checksumDB) read(ctx context.Context, path string) (fetch.MetaResult, error) {
	ttl := c.gm.m.TTL
	if strings.HasPrefix(path, "/lookup/") || strings.HasPrefix(path, "/tile/") && !strings.Contains(path, ".p/") {
		ttl = 30 * 24 * time.Hour
	}
	key := c.gm.env.MetaKey("sumdb/" + c.name + path)
	return c.gm.env.Core.MetaOf(ctx, key, ttl, func() *fetch.MetaSource {
		return &fetch.MetaSource{Key: key, URL: c.url + path, Client: c.ops.httpClient, TTL: ttl, NotFoundTTL: c.gm.m.NotFoundTTL}
	})
}

// sumOps gives the sumdb client its remote reads (through the core), its
// verifier key and the latest tree head it has seen (kept per process:
// a new replica trusts the first head it reads, as a new go command does,
// and checks every later one against it).
type sumOps struct {
	db         *checksumDB
	key        string
	httpClient *http.Client
	mu         sync.Mutex
	latest     []byte
}

func (o *sumOps) ReadRemote(path string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(o.db.gm.env.Core.Background(), 2*o.db.gm.env.Core.UpstreamTimeout())
	defer cancel()
	res, err := o.db.read(ctx, path)
	if err != nil {
		return nil, err
	}
	return res.Entry.Body()
}

func (o *sumOps) ReadConfig(file string) ([]byte, error) {
	if file == "key" {
		return []byte(o.key), nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.latest, nil
}

func (o *sumOps) WriteConfig(file string, old, new []byte) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !bytes.Equal(old, o.latest) {
		return sumdb.ErrWriteConflict
	}
	o.latest = new
	return nil
}

func (o *sumOps) ReadCache(string) ([]byte, error) { return nil, errors.New("no cache") } // the core keeps them
func (o *sumOps) WriteCache(string, []byte)        {}
func (o *sumOps) Log(msg string)                   { o.db.gm.env.Log.Debug("sumdb: " + msg) }
func (o *sumOps) SecurityError(msg string) {
	o.db.gm.env.Log.Error("checksum database misbehaves", "mirror", o.db.gm.m.Name, "sumdb", o.db.name, "msg", msg)
}

// check is the FileSource check of a .mod or .zip of r: its h1: hash
// must be the checksum database's (the first configured; patterns of
// noSumCheck: a zip is only checked as a zip).
func (gm *goMirror) check(r Request) func(io.ReaderAt, int64) error {
	if module.MatchPrefixPatterns(strings.Join(gm.opts.NoSumCheck, ","), r.Module) || len(gm.dbs) == 0 {
		if r.Kind == "zip" {
			return zipCheck(module.Version{Path: r.Module, Version: r.Version})
		}
		return nil
	}
	db := gm.dbs[0]
	return func(ra io.ReaderAt, n int64) error {
		vers := r.Version
		if r.Kind == "mod" {
			vers += "/go.mod"
		}
		lines, err := db.client.Lookup(r.Module, vers)
		if err != nil {
			return fmt.Errorf("checksum database %s: %v", db.name, err)
		}
		got, err := hashOf(r.Kind, ra, n)
		if err != nil {
			return err
		}
		for _, l := range lines {
			if strings.HasSuffix(l, " "+got) {
				return nil
			}
		}
		return fmt.Errorf("%s@%s: %s is not the checksum database's (%s)", r.Module, vers, got, strings.Join(lines, "; "))
	}
}

// maxModBytes bounds a go.mod (the go command's own limit is 16 MiB);
// maxUnpacked a module zip's files (golang.org/x/mod/zip's limit).
const (
	maxModBytes = 16 << 20
	maxUnpacked = 500 << 20
)

// hashOf is the h1: hash of a go.mod or a module zip, as go.sum holds it.
func hashOf(kind string, ra io.ReaderAt, n int64) (string, error) {
	if kind == "mod" {
		if n > maxModBytes {
			return "", fmt.Errorf("go.mod larger than %d bytes", maxModBytes)
		}
		b := make([]byte, n)
		if _, err := ra.ReadAt(b, 0); err != nil && err != io.EOF {
			return "", err
		}
		return dirhash.Hash1([]string{"go.mod"}, func(string) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	}
	zr, err := zip.NewReader(ra, n)
	if err != nil {
		return "", err
	}
	files := make([]string, 0, len(zr.File))
	byName := map[string]*zip.File{}
	for _, f := range zr.File {
		if strings.Contains(f.Name, "\n") {
			return "", errors.New("a file name in the zip has a newline")
		}
		files = append(files, f.Name)
		byName[f.Name] = f
	}
	left := int64(maxUnpacked)
	return dirhash.Hash1(files, func(name string) (io.ReadCloser, error) {
		rc, err := byName[name].Open()
		if err != nil {
			return nil, err
		}
		return &bounded{rc, &left}, nil
	})
}

// bounded reads at most *left bytes summed over every reader sharing it.
type bounded struct {
	io.ReadCloser
	left *int64
}

func (b *bounded) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if *b.left -= int64(n); *b.left < 0 {
		return n, errors.New("the zip unpacks to more than its bound")
	}
	return n, err
}

// sumdbRoute serves /sumdb/<name>/... for the go command: supported,
// latest, verified lookups and tiles, kept like the mirror's metadata.
func (gm *goMirror) sumdbRoute(w http.ResponseWriter, r *http.Request) error {
	var db *checksumDB
	for _, d := range gm.dbs {
		if d.name == r.PathValue("db") {
			db = d
		}
	}
	if db == nil {
		return httpx.NewError(http.StatusNotFound, "this mirror serves no checksum database of that name")
	}
	rest := "/" + r.PathValue("rest")
	switch {
	case rest == "/supported":
		w.WriteHeader(http.StatusOK)
		return nil
	case rest == "/latest" || strings.HasPrefix(rest, "/tile/"):
		if strings.Contains(rest, "..") {
			return httpx.NewError(http.StatusNotFound, "not a checksum database path")
		}
	case strings.HasPrefix(rest, "/lookup/"):
		mod, vers, ok := strings.Cut(strings.TrimPrefix(rest, "/lookup/"), "@")
		path, err1 := module.UnescapePath(mod)
		v, err2 := module.UnescapeVersion(vers)
		if !ok || err1 != nil || err2 != nil {
			return httpx.NewError(http.StatusBadRequest, "not a module@version lookup")
		}
		// Only what verifies is passed on.
		if _, err := db.client.Lookup(path, v); err != nil {
			if errors.Is(err, httpx.ErrNotFound) {
				return httpx.NewError(http.StatusNotFound, err.Error())
			}
			return &httpx.UpstreamError{Status: http.StatusBadGateway, Msg: err.Error()}
		}
	default:
		return httpx.NewError(http.StatusNotFound, "not a checksum database path")
	}
	res, err := db.read(r.Context(), rest)
	if err != nil {
		return err
	}
	return gm.env.Core.ServeMeta(w, r, res, hvText)
}

var hvText = []string{"text/plain; charset=utf-8"}

// zipCheck checks a module zip by golang.org/x/mod/zip's rules (what the
// go command accepts: file names, sizes, the prefix), for modules no
// checksum database knows.
func zipCheck(mv module.Version) func(io.ReaderAt, int64) error {
	return func(ra io.ReaderAt, n int64) error {
		f, ok := ra.(*os.File)
		if !ok {
			return fetch.ArchiveCheck("zip")(ra, n)
		}
		name := fmt.Sprintf("/proc/self/fd/%d", f.Fd()) // a download's spool may have no name
		if _, err := os.Stat(name); err != nil {
			name = f.Name()
		}
		cf, err := modzip.CheckZip(mv, name)
		if err != nil {
			return err
		}
		return cf.Err()
	}
}
