package conda

import (
	"archive/tar"
	"archive/zip"
	"compress/bzip2"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/mirror-proxy/mirror-proxy/audit"
	"github.com/mirror-proxy/mirror-proxy/fetch"
	"github.com/mirror-proxy/mirror-proxy/httpx"
)

// Hosted channels: a package PUT to /<mirror>/<subdir>/<file> is read
// (info/index.json from the archive: no external indexer), stored
// create-only under the artifact prefix, and recorded in its name's index
// object (file name → record); the subdir's repodata.json is built from
// those records, merged into the upstream's, within the hosted TTL on
// other replicas and at once on the one that took the upload. A published
// name is owned: the upstream's records of it are left out.

// hostedFile is one published package in a name's index object, which
// maps "<subdir>/<file>" to it (a file name alone is not a package: the
// same name may be built for several subdirs).
type hostedFile struct {
	Subdir string          `json:"subdir"`
	Record json.RawMessage `json:"record"`
	// Path is where its bytes are, content-addressed
	// ("<subdir>/<sha256>/<file>"); "" in indexes written before: then
	// "<subdir>/<file>".
	Path string `json:"path,omitempty"`
}

// path is where f's bytes are kept in the repository.
func (f hostedFile) path(file string) string {
	if f.Path != "" {
		return f.Path
	}
	return f.Subdir + "/" + file
}

// fileOf is the file name of an index key ("<subdir>/<file>").
func fileOf(key string) string { return key[strings.LastIndexByte(key, '/')+1:] }

// hostedPath is where the published subdir/file of name is stored.
func (cm *condaMirror) hostedPath(ctx context.Context, name, subdir, file string) (string, error) {
	x, err := cm.repo.Index(ctx, name)
	if err != nil {
		return "", err
	}
	v, err := x.Parsed(parseHostedIndex)
	if err != nil {
		return "", &httpx.UpstreamError{Status: http.StatusInternalServerError, Msg: fmt.Sprintf("hosted index of %s: %v", name, err)}
	}
	f, ok := v.(map[string]hostedFile)[subdir+"/"+file]
	if !ok {
		return "", httpx.NewError(http.StatusNotFound, "no such published file")
	}
	return f.path(file), nil
}

// hostedRecords are a subdir's published packages.
type hostedRecords struct {
	files    map[string]json.RawMessage // file name → record
	names    map[string]bool            // every owned name (their upstream records are left out)
	version  uint64                     // changes whenever any of it does
	modified time.Time
}

func (cm *condaMirror) hostedRecords(ctx context.Context, subdir string) (*hostedRecords, error) {
	names, err := cm.repo.Names(ctx)
	if err != nil {
		return nil, err
	}
	hr := &hostedRecords{files: map[string]json.RawMessage{}, names: names.Set}
	h := fnv.New64a()
	io.WriteString(h, names.Gen)
	for _, name := range names.List {
		x, err := cm.repo.Index(ctx, name)
		if err != nil {
			return nil, err
		}
		io.WriteString(h, "\x00"+x.ETag)
		if x.ModTime.After(hr.modified) {
			hr.modified = x.ModTime
		}
		v, err := x.Parsed(parseHostedIndex)
		if err != nil {
			return nil, fmt.Errorf("hosted index of %s: %w", name, err)
		}
		for key, f := range v.(map[string]hostedFile) {
			if f.Subdir == subdir {
				hr.files[fileOf(key)] = f.Record
			}
		}
	}
	hr.version = h.Sum64() | 1 // never 0: 0 is "no hosted part"
	return hr, nil
}

// parseHostedIndex reads a name's index object, keyed "<subdir>/<file>"
// (indexes written before were keyed by file name: read as the same).
func parseHostedIndex(b []byte) (any, error) {
	m := map[string]hostedFile{}
	if len(b) == 0 {
		return m, nil
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, err
	}
	for k, f := range m {
		if !strings.Contains(k, "/") {
			delete(m, k)
			m[f.Subdir+"/"+k] = f
		}
	}
	return m, nil
}

// mergeInto adds the hosted records to a rendered repodata.json.
func (hr *hostedRecords) mergeInto(body []byte) ([]byte, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, err
	}
	for _, k := range []string{"packages", "packages.conda"} {
		m := map[string]json.RawMessage{}
		if len(doc[k]) > 0 {
			if err := json.Unmarshal(doc[k], &m); err != nil {
				return nil, err
			}
		}
		for file, rec := range hr.files {
			if strings.HasSuffix(file, ".conda") == (k == "packages.conda") {
				m[file] = rec
			}
		}
		doc[k], _ = json.Marshal(m)
	}
	return json.Marshal(doc)
}

// maxIndexJSON bounds info/index.json.
const maxIndexJSON = 1 << 20

// upload takes a package: PUT /<mirror>/<subdir>/<name>-<version>-<build>.conda|.tar.bz2.
func (cm *condaMirror) upload(w http.ResponseWriter, r *http.Request) error {
	subdir, file := r.PathValue("subdir"), r.PathValue("file")
	if !ValidSubdir(subdir) || !ValidFilename(file) {
		return httpx.BadRequest("upload to /<mirror>/<subdir>/<name>-<version>-<build>.conda (or .tar.bz2)")
	}
	sp, err := cm.env.Uploads.Body(w, r)
	if err != nil {
		return err
	}
	defer sp.Remove()
	index, err := readIndexJSON(file, sp.File, sp.Size)
	if err != nil {
		return httpx.BadRequest("%s: %v", file, err)
	}
	var meta struct {
		Name, Version, Build, Subdir string
	}
	if err := json.Unmarshal(index, &meta); err != nil {
		return httpx.BadRequest("%s: info/index.json: %v", file, err)
	}
	ext := ".conda"
	if strings.HasSuffix(file, ".tar.bz2") {
		ext = ".tar.bz2"
	}
	if want := meta.Name + "-" + meta.Version + "-" + meta.Build + ext; want != file {
		return httpx.BadRequest("%s: its info/index.json says %s", file, want)
	}
	audit.Noted(r.Context(), audit.Publish, meta.Name, meta.Version)
	if meta.Subdir != subdir {
		return httpx.BadRequest("%s is built for subdir %q, not %q", file, meta.Subdir, subdir)
	}
	sh, mh := sha256.New(), md5.New()
	if _, err := io.Copy(io.MultiWriter(sh, mh), sp.Reader()); err != nil {
		return err
	}
	var rec map[string]any
	if err := json.Unmarshal(index, &rec); err != nil {
		return httpx.BadRequest("%s: info/index.json: %v", file, err)
	}
	sum := hex.EncodeToString(sh.Sum(nil))
	rec["sha256"], rec["md5"], rec["size"] = sum, hex.EncodeToString(mh.Sum(nil)), sp.Size
	recJSON, _ := json.Marshal(rec)

	// Refused before anything is stored when the file is known already.
	key := subdir + "/" + file
	if x, err := cm.repo.Index(r.Context(), meta.Name); err != nil {
		return err
	} else if v, err := x.Parsed(parseHostedIndex); err == nil {
		if f, ok := v.(map[string]hostedFile)[key]; ok && !sameFile(f.Record, sum) {
			return conflict(file)
		}
	}
	// Content-addressed: racing uploads of one file name with other bytes
	// never share an object, and the record that wins names its own.
	path := subdir + "/" + sum + "/" + file
	if err := cm.repo.PutSpooled(r.Context(), path, sp, "application/octet-stream"); err != nil {
		return err
	}
	errConflict := errors.New("conflict")
	err = cm.repo.Update(r.Context(), meta.Name, func(old []byte) ([]byte, error) {
		v, err := parseHostedIndex(old)
		if err != nil {
			return nil, err
		}
		m := v.(map[string]hostedFile)
		if f, ok := m[key]; ok {
			if sameFile(f.Record, sum) {
				return old, nil // an identical retry: nothing to write
			}
			return nil, errConflict
		}
		m[key] = hostedFile{Subdir: subdir, Record: recJSON, Path: path}
		return json.Marshal(m)
	})
	if errors.Is(err, errConflict) {
		return conflict(file)
	}
	if err != nil {
		return err
	}
	return httpx.WriteJSON(w, http.StatusCreated, map[string]string{"ok": "published " + subdir + "/" + file, "sha256": sum})
}

// sameFile: the record is of the bytes whose sha256 is sum.
func sameFile(rec json.RawMessage, sum string) bool {
	var r struct{ SHA256 string }
	_ = json.Unmarshal(rec, &r)
	return r.SHA256 == sum
}

// conflict: other bytes under a published file name (conda's identity of
// a build) are refused; publish a new build number.
func conflict(file string) error {
	return httpx.NewError(http.StatusConflict, file+" is published already with other contents: publish a new build")
}

// readIndexJSON reads info/index.json from a .conda (a zip whose
// info-*.tar.zst holds it) or a .tar.bz2.
func readIndexJSON(file string, ra io.ReaderAt, size int64) ([]byte, error) {
	if strings.HasSuffix(file, ".tar.bz2") {
		return indexFromTar(fetch.Unpacked(bzip2.NewReader(io.NewSectionReader(ra, 0, size)), size))
	}
	zr, err := zip.NewReader(ra, size)
	if err != nil {
		return nil, fmt.Errorf("not a .conda (zip) archive: %w", err)
	}
	for _, f := range zr.File {
		if strings.HasPrefix(f.Name, "info-") && strings.HasSuffix(f.Name, ".tar.zst") {
			rc, err := f.Open()
			if err != nil {
				return nil, err
			}
			defer rc.Close()
			zd, err := zstd.NewReader(rc, zstd.WithDecoderMaxMemory(64<<20), zstd.WithDecoderConcurrency(1))
			if err != nil {
				return nil, err
			}
			defer zd.Close()
			return indexFromTar(fetch.Unpacked(zd, int64(f.CompressedSize64)))
		}
	}
	return nil, errors.New("no info-*.tar.zst in the .conda archive")
}

func indexFromTar(r io.Reader) ([]byte, error) {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil, errors.New("no info/index.json in the archive")
		}
		if err != nil {
			return nil, fmt.Errorf("damaged archive: %w", err)
		}
		if strings.TrimPrefix(h.Name, "./") == "info/index.json" {
			return readAll(tr, maxIndexJSON)
		}
	}
}
