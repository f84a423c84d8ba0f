// Package cargo mirrors Cargo's sparse registries
// (https://doc.rust-lang.org/cargo/reference/registry-index.html): the
// index files, revalidated and served stale, and the .crate files,
// verified against the index's cksum before they are stored.
package cargo

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// nameRe is a crate name as crates.io takes it (ASCII letters, digits,
// - and _, starting with a letter; at most 64).
var nameRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,63}$`)

// ValidName reports whether s is a crate name.
func ValidName(s string) bool { return nameRe.MatchString(s) }

// IndexPath is the index file of a crate, relative to the index root:
// 1/a, 2/ab, 3/a/abc, ab/cd/abcd... (names lowercased).
func IndexPath(name string) string {
	n := strings.ToLower(name)
	return prefixOf(n) + "/" + n
}

// prefixOf is the index directory of a name, in the name's own case
// (Cargo's {prefix}).
func prefixOf(name string) string {
	switch len(name) {
	case 1:
		return "1"
	case 2:
		return "2"
	case 3:
		return "3/" + name[:1]
	}
	return name[:2] + "/" + name[2:4]
}

// ParseIndexPath reads an index file path; ok is false for anything that
// is not the index path of a crate name.
func ParseIndexPath(p string) (name string, ok bool) {
	name = p[strings.LastIndexByte(p, '/')+1:]
	if !ValidName(name) || name != strings.ToLower(name) {
		return "", false
	}
	return name, IndexPath(name) == p
}

// Version is one line of an index file (the fields the mirror reads).
type Version struct {
	Name    string `json:"name"`
	Vers    string `json:"vers"`
	Cksum   string `json:"cksum"`
	Yanked  bool   `json:"yanked"`
	PubTime string `json:"pubtime"`
}

// Published is the version's pubtime (zero when the index gives none).
func (v Version) Published() time.Time {
	t, err := time.Parse(time.RFC3339, v.PubTime)
	if err != nil {
		return time.Time{}
	}
	return t
}

// Index is a parsed index file: its lines as they are, and what each
// says.
type Index struct {
	Lines    [][]byte
	Versions []Version
}

// maxLine bounds one index line.
const maxLine = 1 << 20

// ParseIndex reads an index file: one JSON object per line.
func ParseIndex(b []byte) (*Index, error) {
	ix := &Index{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var v Version
		if err := json.Unmarshal(line, &v); err != nil {
			return nil, fmt.Errorf("index line %d: %v", n, err)
		}
		if v.Name == "" || v.Vers == "" || len(v.Cksum) != 64 {
			return nil, fmt.Errorf("index line %d: no name, vers or sha256 cksum", n)
		}
		ix.Lines = append(ix.Lines, append([]byte(nil), line...))
		ix.Versions = append(ix.Versions, v)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return ix, nil
}

// Find returns the version vers of the index.
func (ix *Index) Find(vers string) (Version, bool) {
	for _, v := range ix.Versions {
		if v.Vers == vers {
			return v, true
		}
	}
	return Version{}, false
}

// Config is a registry's config.json.
type Config struct {
	DL           string `json:"dl"`
	API          string `json:"api,omitempty"`
	AuthRequired bool   `json:"auth-required,omitempty"`
}

// ParseConfig reads config.json.
func ParseConfig(b []byte) (Config, error) {
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("config.json: %v", err)
	}
	if c.DL == "" {
		return c, errors.New("config.json has no dl")
	}
	return c, nil
}

// DownloadURL is where dl (config.json's template) puts a crate file:
// the markers {crate}, {version}, {prefix}, {lowerprefix} and
// {sha256-checksum} replaced, or /{crate}/{version}/download appended when
// it has none.
func DownloadURL(dl, name, vers, cksum string) string {
	markers := []string{"{crate}", "{version}", "{prefix}", "{lowerprefix}", "{sha256-checksum}"}
	has := false
	for _, m := range markers {
		has = has || strings.Contains(dl, m)
	}
	if !has {
		return strings.TrimRight(dl, "/") + "/" + name + "/" + vers + "/download"
	}
	prefix := prefixOf(name)
	r := strings.NewReplacer("{crate}", name, "{version}", vers, "{prefix}", prefix,
		"{lowerprefix}", strings.ToLower(prefix), "{sha256-checksum}", cksum)
	return r.Replace(dl)
}
