// Package composer knows the Composer 2 repository protocol: package
// names, the root packages.json and how a mirror rewrites it, minified p2
// files, and how a dist URL that Composer builds from a mirror template
// maps back to the dist in the metadata. It knows nothing of HTTP servers,
// caches or storage.
package composer

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// ValidName reports whether name is a valid lowercase vendor/package name:
// Composer's rule ^[a-z0-9]([_.-]?[a-z0-9]+)*/[a-z0-9](([_.]|-{1,2})?[a-z0-9]+)*$
// (clients lowercase names before asking), checked by hand because it runs
// on every metadata request.
func ValidName(name string) bool {
	if len(name) > 200 {
		return false
	}
	vendor, pkg, ok := strings.Cut(name, "/")
	return ok && validPart(vendor, false) && validPart(pkg, true)
}

func validPart(s string, doubleDash bool) bool {
	afterSep, dashes := true, 0 // the first character must be a letter or digit
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'a' && c <= 'z' || c >= '0' && c <= '9':
			afterSep, dashes = false, 0
		case c == '_' || c == '.':
			if afterSep {
				return false
			}
			afterSep = true
		case c == '-':
			if afterSep && !(doubleDash && dashes == 1) {
				return false
			}
			afterSep = true
			dashes++
		default:
			return false
		}
	}
	return !afterSep
}

// ParseP2File splits a p2 file name ("foo.json", "foo~dev.json") into the
// package part and whether it is the dev file.
func ParseP2File(file string) (pkg string, dev bool, ok bool) {
	base, found := strings.CutSuffix(file, ".json")
	if !found {
		return "", false, false
	}
	if b, isDev := strings.CutSuffix(base, "~dev"); isDev {
		return b, true, true
	}
	return base, false, true
}

// Root is an upstream's packages.json.
type Root map[string]json.RawMessage

// ParseRoot parses and checks an upstream packages.json: it must be a
// Composer 2 repository (metadata-url).
func ParseRoot(b []byte) (Root, error) {
	var r Root
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("packages.json is not a JSON object: %w", err)
	}
	if r.str("metadata-url") == "" {
		return nil, errors.New("packages.json has no metadata-url: not a Composer 2 repository")
	}
	return r, nil
}

func (r Root) str(key string) string {
	var s string
	_ = json.Unmarshal(r[key], &s)
	return s
}

// resolve makes a URL from the upstream's metadata absolute, as Composer
// does: a value starting with "/" is relative to the repository's origin.
func resolve(base, ref string) string {
	if strings.HasPrefix(ref, "http://") || strings.HasPrefix(ref, "https://") {
		return ref
	}
	u, err := url.Parse(base)
	if err != nil {
		return ref
	}
	if strings.HasPrefix(ref, "/") {
		return u.Scheme + "://" + u.Host + ref
	}
	return strings.TrimRight(base, "/") + "/" + ref
}

// P2URL is the upstream URL of the p2 file of pkg (with "~dev" for the dev
// file), from the upstream root's metadata-url template.
func (r Root) P2URL(base, pkg string) string {
	return resolve(base, strings.ReplaceAll(r.str("metadata-url"), "%package%", pkg))
}

// AdvisoriesURL is the upstream's security advisories API, or "".
func (r Root) AdvisoriesURL(base string) string {
	var sa struct {
		APIURL string `json:"api-url"`
	}
	if json.Unmarshal(r["security-advisories"], &sa) != nil || sa.APIURL == "" {
		return ""
	}
	return resolve(base, sa.APIURL)
}

// Keys copied from the upstream root unchanged: they hold no URL.
var passThrough = []string{"available-packages", "available-package-patterns", "warning", "info", "warnings", "infos", "warning-versions", "info-versions"}

// ClientRoot is the packages.json a client gets: every URL leads to the
// proxy mounted at prefix ("/packagist" or "/mirror/packagist"): metadata
// through metadata-url, dists through a preferred mirror (path-absolute
// values, which Composer resolves against the repository's own origin, so
// no Host header is trusted for them). Search, list, providers,
// notify-batch, the v1 keys and metadata-changes-url are dropped.
// Security advisories keep working: the p2 files carry them (metadata:
// true) and api-url, which Composer 2.5 does not resolve and so must be
// absolute, points at the proxy's advisories route (advisoriesURL; empty
// drops it, and a mirror with its own advisories sets it whatever the
// upstream publishes).
func (r Root) ClientRoot(prefix, advisoriesURL string) ([]byte, error) {
	out := rootFor(prefix)
	for _, k := range passThrough {
		if v, ok := r[k]; ok {
			out[k] = v
		}
	}
	adv := map[string]any{}
	if raw, ok := r["security-advisories"]; ok {
		var sa map[string]json.RawMessage
		if json.Unmarshal(raw, &sa) == nil {
			if m, ok := sa["metadata"]; ok {
				adv["metadata"] = m
			}
		}
	}
	if advisoriesURL != "" {
		adv["api-url"] = advisoriesURL
	}
	if len(adv) > 0 {
		out["security-advisories"] = adv
	}
	return json.Marshal(out)
}

// rootFor is the packages.json every client gets from the proxy mounted
// at prefix: metadata through metadata-url, dists through a preferred
// mirror (path-absolute values, which Composer resolves against the
// repository's own origin).
func rootFor(prefix string) map[string]any {
	return map[string]any{
		"packages":     []any{},
		"metadata-url": prefix + "/p2/%package%.json",
		"mirrors": []map[string]any{{
			"dist-url":  prefix + "/zipball/%package%/%version%/ref%reference%.%type%",
			"preferred": true,
		}},
	}
}

// CheckP2 validates an upstream p2 file before it is stored: a JSON object
// (an HTML error page with status 200 is refused).
func CheckP2(b []byte) error {
	var v map[string]json.RawMessage
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("p2 file is not a JSON object: %w", err)
	}
	return nil
}

// Version is one expanded version object.
type Version map[string]any

// Expand returns the versions of pkg in a p2 file, expanding the minified
// format ("minified": "composer/2.0"): each element after the first holds
// only the keys that changed, "__unset" removing one. Every version is an
// independent map: a version without dist never inherits another's.
func Expand(b []byte, pkg string) ([]Version, error) {
	var doc struct {
		Packages map[string][]map[string]json.RawMessage `json:"packages"`
		Minified string                                  `json:"minified"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("p2 file of %s: %w", pkg, err)
	}
	list := doc.Packages[pkg]
	out := make([]Version, 0, len(list))
	state := map[string]json.RawMessage{}
	for i, el := range list {
		if doc.Minified == "composer/2.0" {
			if i == 0 {
				state = map[string]json.RawMessage{}
			}
			for k, v := range el {
				if string(v) == `"__unset"` {
					delete(state, k)
				} else {
					state[k] = v
				}
			}
		} else {
			state = el
		}
		v := Version{}
		for k, raw := range state {
			var x any
			if err := json.Unmarshal(raw, &x); err != nil {
				return nil, err
			}
			v[k] = x
		}
		out = append(out, v)
	}
	return out, nil
}

// Dist is a version's downloadable archive.
type Dist struct {
	Type      string
	URL       string
	Reference string
	Shasum    string
	// Version is the %version% segment of the version the dist belongs
	// to (MirrorVersion of its normalized version); "" when it has none.
	Version string
	// Time is the version's release time as the metadata gives it.
	Time string
	// Pretty is the version as the metadata writes it ("1.2.3").
	Pretty string
}

// ChangedDists lists the dists of pkg whose shasum differs between two
// versions of its p2 file for the same version and reference: the
// upstream now vouches for other bytes under the same name.
func ChangedDists(old, new []byte, pkg string) []Dist {
	ov, err1 := Expand(old, pkg)
	nv, err2 := Expand(new, pkg)
	if err1 != nil || err2 != nil {
		return nil
	}
	type id struct{ version, ref string }
	before := map[id]string{}
	for _, v := range ov {
		if d := distOf(v); d.Shasum != "" {
			before[id{d.Version, d.Reference}] = d.Shasum
		}
	}
	var out []Dist
	for _, v := range nv {
		d := distOf(v)
		if prev, ok := before[id{d.Version, d.Reference}]; ok && d.Shasum != "" && !strings.EqualFold(prev, d.Shasum) {
			out = append(out, d)
		}
	}
	return out
}

func distOf(v Version) Dist {
	d, _ := v["dist"].(map[string]any)
	if d == nil {
		return Dist{}
	}
	out := Dist{Type: str(d, "type"), URL: str(d, "url"), Reference: str(d, "reference"), Shasum: str(d, "shasum")}
	if vn := str(v, "version_normalized"); vn != "" {
		out.Version = MirrorVersion(vn)
	}
	return out
}

// ValidSHA1 reports whether s is a sha1 hex digest (Packagist leaves
// shasum empty for most dists).
func ValidSHA1(s string) bool { return len(s) == 40 && hexRe.MatchString(strings.ToLower(s)) }

func str(m map[string]any, k string) string { s, _ := m[k].(string); return s }

func md5hex(s string) string { h := md5.Sum([]byte(s)); return hex.EncodeToString(h[:]) }

var hexRe = regexp.MustCompile(`^[a-f0-9]*$`)

// MirrorVersion is what Composer puts for %version% in a mirror URL: the
// normalized version, md5'd when it contains a "/".
func MirrorVersion(normalized string) string {
	if strings.Contains(normalized, "/") {
		return md5hex(normalized)
	}
	return normalized
}

// MirrorReference is what Composer puts for %reference%: the reference,
// md5'd unless it is lowercase hex.
func MirrorReference(ref string) string {
	if ref == "" || hexRe.MatchString(ref) {
		return ref
	}
	return md5hex(ref)
}

// FindDist maps the %version% and %reference% of a mirror URL back to a
// dist of the given versions (stable and dev together): a version whose
// normalized version and reference both match, else one whose reference
// matches, else (for an empty reference) one whose version matches.
func FindDist(versions []Version, version, ref string) (Dist, bool) {
	var byRef, byVersion *Dist
	for _, v := range versions {
		d, _ := v["dist"].(map[string]any)
		if d == nil || str(d, "url") == "" {
			continue
		}
		dist := Dist{Type: str(d, "type"), URL: str(d, "url"), Reference: str(d, "reference"), Shasum: str(d, "shasum"), Time: str(v, "time"), Pretty: str(v, "version")}
		vn := str(v, "version_normalized")
		if vn != "" {
			dist.Version = MirrorVersion(vn)
		}
		verOK := vn != "" && dist.Version == version
		src, _ := v["source"].(map[string]any)
		// %reference% is the dist's reference; the source's stands in only
		// when the dist has none.
		refOK := MirrorReference(dist.Reference) == ref ||
			(dist.Reference == "" && src != nil && ref != "" && MirrorReference(str(src, "reference")) == ref)
		switch {
		case verOK && refOK:
			return dist, true
		case refOK && ref != "" && byRef == nil:
			byRef = &dist
		case verOK && ref == "" && byVersion == nil:
			byVersion = &dist
		}
	}
	if byRef != nil {
		return *byRef, true
	}
	if byVersion != nil {
		return *byVersion, true
	}
	return Dist{}, false
}

var (
	versionSegRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$`)
	refFileRe    = regexp.MustCompile(`^ref([a-f0-9]{0,64})\.([a-z0-9]{1,8})$`)
)

// ParseDistPath checks the %version% segment and the "ref%reference%.%type%"
// file name of a dist URL.
func ParseDistPath(version, file string) (ref, typ string, ok bool) {
	if !versionSegRe.MatchString(version) {
		return "", "", false
	}
	m := refFileRe.FindStringSubmatch(file)
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}
