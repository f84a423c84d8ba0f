// Package conda mirrors conda channels (conda-forge and any channel
// served over HTTP): repodata.json in its plain, .zst and .bz2 forms,
// current_repodata.json and channeldata.json (mutable, revalidated,
// served stale when the upstream fails), CEP-16 sharded repodata (the
// short-lived shard index and immutable shards, verified against the
// sha256 their name gives), and packages (.conda, .tar.bz2) verified
// against the sha256 of their repodata record before they are stored. A
// hosted channel indexes what is uploaded to it itself.
package conda

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/vmihailenco/msgpack/v5"
)

// Record is what the proxy reads of a package record.
type Record struct {
	Name      string `json:"name" msgpack:"name"`
	Version   string `json:"version" msgpack:"version"`
	Build     string `json:"build" msgpack:"build"`
	SHA256    string `json:"sha256" msgpack:"-"`
	Size      int64  `json:"size" msgpack:"size"`
	Timestamp int64  `json:"timestamp" msgpack:"timestamp"` // ms (or s) since the epoch; 0: unknown
}

// Repodata is a parsed repodata.json: its records by file name, and the
// base URL of its packages (info.base_url, CEP-15; "" : next to it).
type Repodata struct {
	Subdir  string
	BaseURL string
	Records map[string]Record
	// raw keeps every top-level key for rendering.
	raw map[string]json.RawMessage
}

// maxDecoded bounds a decompressed document (conda-forge's linux-64
// repodata.json is about 250 MB).
const maxDecoded = 1 << 30

// ParseRepodata reads repodata.json (or current_repodata.json).
func ParseRepodata(b []byte) (*Repodata, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("repodata is not a JSON object: %w", err)
	}
	rd := &Repodata{Records: map[string]Record{}, raw: raw}
	var info struct {
		Subdir  string `json:"subdir"`
		BaseURL string `json:"base_url"`
	}
	if len(raw["info"]) > 0 {
		if err := json.Unmarshal(raw["info"], &info); err != nil {
			return nil, fmt.Errorf("repodata info: %w", err)
		}
	}
	rd.Subdir, rd.BaseURL = info.Subdir, info.BaseURL
	for _, k := range []string{"packages", "packages.conda"} {
		if len(raw[k]) == 0 {
			continue
		}
		var m map[string]Record
		if err := json.Unmarshal(raw[k], &m); err != nil {
			return nil, fmt.Errorf("repodata %s: %w", k, err)
		}
		for f, r := range m {
			if !ValidFilename(f) {
				continue // never served: no URL of this mirror names it
			}
			rd.Records[f] = r
		}
	}
	return rd, nil
}

// Render writes the repodata with records kept by keep (nil: all) and
// info.base_url dropped when dropBase is set (packages are then fetched
// next to the repodata: from the proxy).
func (rd *Repodata) Render(keep func(file string, r Record) bool, dropBase bool) ([]byte, error) {
	out := map[string]json.RawMessage{}
	for k, v := range rd.raw {
		out[k] = v
	}
	if dropBase && len(rd.raw["info"]) > 0 {
		var info map[string]json.RawMessage
		if err := json.Unmarshal(rd.raw["info"], &info); err != nil {
			return nil, err
		}
		delete(info, "base_url")
		out["info"], _ = json.Marshal(info)
	}
	if keep != nil {
		for _, k := range []string{"packages", "packages.conda"} {
			if len(rd.raw[k]) == 0 {
				continue
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal(rd.raw[k], &m); err != nil {
				return nil, err
			}
			for f := range m {
				if r, ok := rd.Records[f]; !ok || !keep(f, r) {
					delete(m, f)
				}
			}
			out[k], _ = json.Marshal(m)
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// ShardIndex is a CEP-16 repodata_shards.msgpack.zst.
type ShardIndex struct {
	Version int `msgpack:"version"`
	Info    struct {
		BaseURL       string `msgpack:"base_url"`
		ShardsBaseURL string `msgpack:"shards_base_url"`
		Subdir        string `msgpack:"subdir"`
	} `msgpack:"info"`
	// Shards maps package names to the sha256 of their shard.
	Shards map[string][]byte `msgpack:"shards"`
}

// Shard is one package name's records in a sharded channel.
type Shard struct {
	Packages      map[string]ShardRecord `msgpack:"packages"`
	PackagesConda map[string]ShardRecord `msgpack:"packages.conda"`
}

// ShardRecord is a record in a shard: sha256 and md5 are bytes.
type ShardRecord struct {
	Name      string `msgpack:"name"`
	Version   string `msgpack:"version"`
	Build     string `msgpack:"build"`
	SHA256    []byte `msgpack:"sha256"`
	Size      int64  `msgpack:"size"`
	Timestamp int64  `msgpack:"timestamp"`
}

// Record is the shard record as a repodata record.
func (r ShardRecord) Record() Record {
	return Record{Name: r.Name, Version: r.Version, Build: r.Build, SHA256: fmt.Sprintf("%x", r.SHA256), Size: r.Size, Timestamp: r.Timestamp}
}

// Find returns the record of file.
func (s *Shard) Find(file string) (ShardRecord, bool) {
	if r, ok := s.PackagesConda[file]; ok {
		return r, true
	}
	r, ok := s.Packages[file]
	return r, ok
}

// maxShardDecoded bounds a decompressed shard index or shard (conda-forge's
// largest are a few MB): a small zstd bomb must not take a GB of memory.
const maxShardDecoded = 64 << 20

var zdec, _ = zstd.NewReader(nil, zstd.WithDecoderMaxMemory(maxShardDecoded), zstd.WithDecoderConcurrency(0))

// Unzstd decompresses a shard index or shard, refusing more than 64 MiB.
func Unzstd(b []byte) ([]byte, error) {
	return zdec.DecodeAll(b, nil)
}

// Zstd compresses a document.
func Zstd(b []byte) []byte {
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault))
	defer enc.Close()
	return enc.EncodeAll(b, nil)
}

// ParseShardIndex reads repodata_shards.msgpack.zst.
func ParseShardIndex(b []byte) (*ShardIndex, error) {
	raw, err := Unzstd(b)
	if err != nil {
		return nil, fmt.Errorf("shard index: %w", err)
	}
	var idx ShardIndex
	if err := msgpack.Unmarshal(raw, &idx); err != nil {
		return nil, fmt.Errorf("shard index: %w", err)
	}
	for name, sum := range idx.Shards {
		if len(sum) != 32 {
			return nil, fmt.Errorf("shard index: the shard of %q has no sha256", name)
		}
	}
	return &idx, nil
}

// Marshal writes the index as repodata_shards.msgpack.zst.
func (idx *ShardIndex) Marshal() ([]byte, error) {
	raw, err := msgpack.Marshal(idx)
	if err != nil {
		return nil, err
	}
	return Zstd(raw), nil
}

// ParseShard reads a shard (<sha256>.msgpack.zst).
func ParseShard(b []byte) (*Shard, error) {
	raw, err := Unzstd(b)
	if err != nil {
		return nil, fmt.Errorf("shard: %w", err)
	}
	var s Shard
	if err := msgpack.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("shard: %w", err)
	}
	return &s, nil
}

var (
	subdirRe   = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9_]+)?$`)
	filenameRe = regexp.MustCompile(`^([A-Za-z0-9_.+-]+)-([^-/]+)-([^-/]+)\.(conda|tar\.bz2)$`)
	shardRe    = regexp.MustCompile(`^([0-9a-f]{64})\.msgpack\.zst$`)
)

// ValidSubdir reports whether s is a platform subdirectory (noarch,
// linux-64, osx-arm64, ...).
func ValidSubdir(s string) bool { return len(s) <= 40 && subdirRe.MatchString(s) }

// ValidFilename reports whether s is a package file name.
func ValidFilename(s string) bool { return len(s) <= 250 && filenameRe.MatchString(s) }

// PackageName is the package name in a file name (name-version-build.ext).
func PackageName(file string) string {
	m := filenameRe.FindStringSubmatch(file)
	if m == nil {
		return ""
	}
	return m[1]
}

// ShardSum is the sha256 a shard's file name gives (hex), or "".
func ShardSum(file string) string {
	m := shardRe.FindStringSubmatch(file)
	if m == nil {
		return ""
	}
	return m[1]
}

// Resolve resolves ref (a base URL from an index, possibly relative)
// against the URL of the document that gave it, as a directory.
func Resolve(doc, ref string) (string, error) {
	base, err := url.Parse(doc)
	if err != nil {
		return "", err
	}
	u, err := url.Parse(ref)
	if err != nil {
		return "", err
	}
	out := base.ResolveReference(u).String()
	if !strings.HasSuffix(out, "/") {
		out += "/"
	}
	return out, nil
}

// Absolute reports whether ref names a scheme or host (so clients would
// not come back to the proxy).
func Absolute(ref string) bool {
	u, err := url.Parse(ref)
	return err != nil || u.IsAbs() || u.Host != "" || strings.HasPrefix(ref, "//")
}

// readAll reads at most max bytes.
func readAll(r io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err == nil && int64(len(b)) > max {
		err = fmt.Errorf("larger than %d bytes", max)
	}
	return b, err
}
