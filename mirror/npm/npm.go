// Package npm mirrors an npm registry: packuments (full and abbreviated),
// tarballs verified against dist.integrity before they are stored, and
// the audit endpoints forwarded. This file knows the protocol: names,
// packuments and tarball file names; serve.go holds the routes and
// handlers on the fetch-through core.
package npm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strings"
	"time"
)

// Media types of packuments.
const (
	FullType        = "application/json"
	AbbreviatedType = "application/vnd.npm.install-v1+json"
)

var (
	fileRe = regexp.MustCompile(`^[A-Za-z0-9~-][A-Za-z0-9._~-]{0,250}\.tgz$`)
)

// ValidName reports whether name is a package name ("lodash",
// "@scope/name"); legacy names with capitals are accepted.
// (By hand, not with a regular expression: every warm request checks one.)
func ValidName(name string) bool {
	if len(name) == 0 || len(name) > 214 {
		return false
	}
	if name[0] == '@' {
		scope, rest, ok := strings.Cut(name[1:], "/")
		return ok && validPart(scope) && validPart(rest)
	}
	return validPart(name)
}

// validPart: [A-Za-z0-9~-][A-Za-z0-9._~-]*
func validPart(s string) bool {
	if s == "" || s[0] == '.' || s[0] == '_' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '~' || c == '-') {
			return false
		}
	}
	return true
}

// ValidTarball reports whether file is a tarball file name.
func ValidTarball(file string) bool { return fileRe.MatchString(file) }

// Escape is the name as the registry's URL names it ("@scope%2fname").
func Escape(name string) string { return strings.Replace(url.PathEscape(name), "%2F", "%2f", 1) }

// Abbreviated reports whether a client asked for the abbreviated
// packument (npm and yarn do for installs).
func Abbreviated(accept string) bool { return strings.Contains(accept, AbbreviatedType) }

// Dist is one version's tarball as a packument gives it.
type Dist struct {
	Version   string
	Tarball   string // the upstream's URL
	Integrity string // SRI ("sha512-...")
	Shasum    string // sha1 hex
}

// Packument is what the proxy needs of a packument: each version's dist,
// and (full packuments only) each version's publish time.
type Packument struct {
	Name     string
	Versions map[string]Dist
	Times    map[string]time.Time
}

// Parse reads a packument (either representation).
func Parse(b []byte) (*Packument, error) {
	var doc struct {
		Name     string `json:"name"`
		Versions map[string]struct {
			Dist struct {
				Tarball   string `json:"tarball"`
				Integrity string `json:"integrity"`
				Shasum    string `json:"shasum"`
			} `json:"dist"`
		} `json:"versions"`
		Time map[string]string `json:"time"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("packument is not a JSON object: %w", err)
	}
	if doc.Name == "" {
		return nil, errors.New("packument has no name")
	}
	p := &Packument{Name: doc.Name, Versions: map[string]Dist{}, Times: map[string]time.Time{}}
	for v, t := range doc.Time {
		if at, err := time.Parse(time.RFC3339Nano, t); err == nil {
			p.Times[v] = at
		}
	}
	for v, d := range doc.Versions {
		p.Versions[v] = Dist{Version: v, Tarball: d.Dist.Tarball, Integrity: d.Dist.Integrity, Shasum: d.Dist.Shasum}
	}
	return p, nil
}

// TarballFile is the file name a tarball URL ends with.
func TarballFile(tarball string) string {
	u, err := url.Parse(tarball)
	if err != nil {
		return ""
	}
	return path.Base(u.Path)
}

// Find returns the version whose tarball is file.
func (p *Packument) Find(file string) (Dist, bool) {
	for _, d := range p.Versions {
		if TarballFile(d.Tarball) == file {
			return d, true
		}
	}
	return Dist{}, false
}

// Render is the packument a client gets: every dist.tarball leads to
// base (the mirror's absolute URL, "http://host/npm") as
// <base>/<name>/-/<file>; everything else is the upstream's.
func Render(b []byte, base string) ([]byte, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	var name string
	_ = json.Unmarshal(doc["name"], &name)
	var versions map[string]map[string]json.RawMessage
	if raw, ok := doc["versions"]; ok {
		if err := json.Unmarshal(raw, &versions); err != nil {
			return nil, fmt.Errorf("packument versions: %w", err)
		}
	}
	for _, v := range versions {
		var dist map[string]json.RawMessage
		if json.Unmarshal(v["dist"], &dist) != nil || dist == nil {
			continue
		}
		var tarball string
		if json.Unmarshal(dist["tarball"], &tarball) != nil {
			continue
		}
		file := TarballFile(tarball)
		if !ValidTarball(file) {
			delete(dist, "tarball") // nothing the proxy could serve
		} else {
			dist["tarball"], _ = json.Marshal(base + "/" + name + "/-/" + file)
		}
		v["dist"], _ = json.Marshal(dist)
	}
	if versions != nil {
		doc["versions"], _ = json.Marshal(versions)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}
