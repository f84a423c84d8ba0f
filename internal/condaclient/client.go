// Package condaclient is a small conda client for tests, written apart
// from the mirror's own code: it reads a channel's repodata as pixi and
// conda do (repodata.json, repodata.json.zst, or CEP-16 shards), resolves
// a package and its dependencies (highest version that satisfies simple
// ">=", "==" and bare constraints), and downloads each package, checking
// its sha256 and size.
package condaclient

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/vmihailenco/msgpack/v5"
)

// Record is a package record.
type Record struct {
	File    string
	Name    string   `json:"name"`
	Version string   `json:"version"`
	Build   string   `json:"build"`
	Depends []string `json:"depends"`
	SHA256  string   `json:"sha256"`
	Size    int64    `json:"size"`
	URL     string   // where to download it
}

// Mode is how repodata is read.
type Mode int

const (
	Plain   Mode = iota // repodata.json
	Zstd                // repodata.json.zst
	Sharded             // repodata_shards.msgpack.zst and shards
)

// Client reads one channel.
type Client struct {
	Channel string // http://host/mirror
	HTTP    *http.Client
	// Requests lists the URLs fetched, in order.
	Requests []string
}

func (c *Client) get(u string) ([]byte, error) {
	c.Requests = append(c.Requests, u)
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s: %.200s", u, resp.Status, b)
	}
	return b, nil
}

func unzstd(b []byte) ([]byte, error) {
	d, err := zstd.NewReader(nil)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.DecodeAll(b, nil)
}

// Records reads subdir's records for the given names (all names for the
// plain forms).
func (c *Client) Records(subdir string, mode Mode, names ...string) ([]Record, error) {
	dir := c.Channel + "/" + subdir + "/"
	if mode == Sharded {
		return c.sharded(dir, names)
	}
	file := "repodata.json"
	if mode == Zstd {
		file += ".zst"
	}
	b, err := c.get(dir + file)
	if err != nil {
		return nil, err
	}
	if mode == Zstd {
		if b, err = unzstd(b); err != nil {
			return nil, err
		}
	}
	var rd struct {
		Info struct {
			BaseURL string `json:"base_url"`
		} `json:"info"`
		Packages      map[string]Record `json:"packages"`
		PackagesConda map[string]Record `json:"packages.conda"`
	}
	if err := json.Unmarshal(b, &rd); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	base, err := resolve(dir+file, rd.Info.BaseURL)
	if err != nil {
		return nil, err
	}
	var out []Record
	for _, m := range []map[string]Record{rd.Packages, rd.PackagesConda} {
		for f, r := range m {
			r.File, r.URL = f, base+f
			out = append(out, r)
		}
	}
	return out, nil
}

func resolve(doc, ref string) (string, error) {
	if ref == "" {
		ref = "./"
	}
	b, err := url.Parse(doc)
	if err != nil {
		return "", err
	}
	r, err := url.Parse(ref)
	if err != nil {
		return "", err
	}
	s := b.ResolveReference(r).String()
	if !strings.HasSuffix(s, "/") {
		s += "/"
	}
	return s, nil
}

func (c *Client) sharded(dir string, names []string) ([]Record, error) {
	b, err := c.get(dir + "repodata_shards.msgpack.zst")
	if err != nil {
		return nil, err
	}
	raw, err := unzstd(b)
	if err != nil {
		return nil, err
	}
	var idx struct {
		Info struct {
			BaseURL       string `msgpack:"base_url"`
			ShardsBaseURL string `msgpack:"shards_base_url"`
		} `msgpack:"info"`
		Shards map[string][]byte `msgpack:"shards"`
	}
	if err := msgpack.Unmarshal(raw, &idx); err != nil {
		return nil, err
	}
	pkgBase, err := resolve(dir+"repodata_shards.msgpack.zst", idx.Info.BaseURL)
	if err != nil {
		return nil, err
	}
	shardBase, err := resolve(dir+"repodata_shards.msgpack.zst", idx.Info.ShardsBaseURL)
	if err != nil {
		return nil, err
	}
	var out []Record
	for _, name := range names {
		sum, ok := idx.Shards[name]
		if !ok {
			continue
		}
		h := hex.EncodeToString(sum)
		z, err := c.get(shardBase + h + ".msgpack.zst")
		if err != nil {
			return nil, err
		}
		if got := sha256.Sum256(z); hex.EncodeToString(got[:]) != h {
			return nil, fmt.Errorf("shard of %s: sha256 %x, the index says %s", name, got, h)
		}
		raw, err := unzstd(z)
		if err != nil {
			return nil, err
		}
		var shard map[string]map[string]struct {
			Name    string   `msgpack:"name"`
			Version string   `msgpack:"version"`
			Build   string   `msgpack:"build"`
			Depends []string `msgpack:"depends"`
			SHA256  []byte   `msgpack:"sha256"`
			Size    int64    `msgpack:"size"`
		}
		if err := msgpack.Unmarshal(raw, &shard); err != nil {
			return nil, err
		}
		for _, k := range []string{"packages", "packages.conda"} {
			for f, r := range shard[k] {
				out = append(out, Record{File: f, Name: r.Name, Version: r.Version, Build: r.Build, Depends: r.Depends,
					SHA256: hex.EncodeToString(r.SHA256), Size: r.Size, URL: pkgBase + f})
			}
		}
	}
	return out, nil
}

// Solve picks, for spec ("name", "name >=1.1", "name ==1.0") and then
// each dependency, the highest matching version (.conda before .tar.bz2
// at the same version); lookup gives the records of a name.
func Solve(spec string, lookup func(name string) ([]Record, error)) ([]Record, error) {
	var out []Record
	seen := map[string]bool{}
	todo := []string{spec}
	for len(todo) > 0 {
		s := todo[0]
		todo = todo[1:]
		fields := strings.Fields(s)
		name := fields[0]
		if seen[name] {
			continue
		}
		seen[name] = true
		recs, err := lookup(name)
		if err != nil {
			return nil, err
		}
		var ok []Record
		for _, r := range recs {
			if r.Name == name && (len(fields) < 2 || satisfies(r.Version, fields[1])) {
				ok = append(ok, r)
			}
		}
		if len(ok) == 0 {
			return nil, fmt.Errorf("nothing provides %q", s)
		}
		sort.Slice(ok, func(i, j int) bool {
			if c := compare(ok[i].Version, ok[j].Version); c != 0 {
				return c > 0
			}
			return strings.HasSuffix(ok[i].File, ".conda") && !strings.HasSuffix(ok[j].File, ".conda")
		})
		out = append(out, ok[0])
		todo = append(todo, ok[0].Depends...)
	}
	return out, nil
}

func satisfies(v, c string) bool {
	switch {
	case strings.HasPrefix(c, ">="):
		return compare(v, c[2:]) >= 0
	case strings.HasPrefix(c, "=="):
		return compare(v, c[2:]) == 0
	case strings.HasPrefix(c, "<"):
		return compare(v, c[1:]) < 0
	}
	return compare(v, c) == 0
}

func compare(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

// Download fetches a record's package and checks its sha256 and size.
func (c *Client) Download(r Record) ([]byte, error) {
	b, err := c.get(r.URL)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	if hex.EncodeToString(sum[:]) != r.SHA256 || (r.Size > 0 && int64(len(b)) != r.Size) {
		return nil, fmt.Errorf("%s: sha256 %x (%d bytes), the record says %s (%d bytes)", r.File, sum, len(b), r.SHA256, r.Size)
	}
	return b, nil
}

// Install resolves spec in subdir and noarch and downloads every package.
func (c *Client) Install(spec, subdir string, mode Mode) ([]Record, error) {
	lookup := func(name string) ([]Record, error) {
		var all []Record
		for _, sd := range []string{subdir, "noarch"} {
			recs, err := c.Records(sd, mode, name)
			if err != nil {
				return nil, err
			}
			all = append(all, recs...)
			if sd == "noarch" {
				break
			}
		}
		return all, nil
	}
	recs, err := Solve(spec, lookup)
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		if _, err := c.Download(r); err != nil {
			return nil, err
		}
	}
	return recs, nil
}
