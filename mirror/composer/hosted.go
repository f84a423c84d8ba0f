package composer

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
)

// maxComposerJSON caps the composer.json read from an uploaded archive.
const maxComposerJSON = 1 << 20

// ComposerJSON reads composer.json from a zip archive: at its root, or
// inside its one top-level folder (as Composer's own Zip::getComposerJson
// accepts it). The errors name the problem for the uploader.
func ComposerJSON(r io.ReaderAt, size int64) (map[string]any, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, fmt.Errorf("the package is not a valid zip archive: %v", err)
	}
	var atRoot, nested *zip.File
	tops := map[string]bool{}
	for _, f := range zr.File {
		name := strings.TrimPrefix(f.Name, "./")
		if name == "" {
			continue
		}
		top, rest, isNested := strings.Cut(name, "/")
		tops[top] = true
		switch {
		case !isNested && name == "composer.json":
			atRoot = f
		case isNested && rest == "composer.json":
			nested = f
		}
	}
	found := atRoot
	if found == nil && nested != nil && len(tops) == 1 {
		found = nested
	}
	if found == nil {
		return nil, errors.New("the zip holds no composer.json at its root or in its one top-level folder")
	}
	rc, err := found.Open()
	if err != nil {
		return nil, fmt.Errorf("the zip's composer.json cannot be read: %v", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxComposerJSON+1))
	if err != nil {
		return nil, fmt.Errorf("the zip's composer.json cannot be read: %v", err)
	}
	if len(b) > maxComposerJSON {
		return nil, errors.New("the zip's composer.json is larger than 1 MiB")
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("the zip's composer.json is not a JSON object: %v", err)
	}
	return m, nil
}

var (
	classicVersionRe = regexp.MustCompile(`(?i)^v?(\d{1,5})(\.\d+)?(\.\d+)?(\.\d+)?` + modifierRe + `$`)
	dateVersionRe    = regexp.MustCompile(`(?i)^v?(\d{4}(?:[.:-]?\d{2}){1,6}(?:[.:-]?\d{1,3}){0,2})` + modifierRe + `$`)
	branchRe         = regexp.MustCompile(`(?i)^v?(\d+)(\.(?:\d+|[x*]))?(\.(?:\d+|[x*]))?(\.(?:\d+|[x*]))?$`)
	devSuffixRe      = regexp.MustCompile(`(?i)^(.*?)[.-]?dev$`)
	nonDigitRe       = regexp.MustCompile(`\D`)
	// A version as the upload URL may carry it.
	versionTextRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$`)
)

const modifierRe = `[._-]?(?:(stable|beta|b|RC|alpha|a|patch|pl|p)((?:[.-]?\d+)*)?)?([.-]?dev)?`

// NormalizeVersion normalizes a version as Composer's VersionParser does:
// 1.2 → 1.2.0.0, v2.0.0-beta1 → 2.0.0.0-beta1, 1.x-dev →
// 1.9999999.9999999.9999999-dev, master and dev-main stay branches.
func NormalizeVersion(v string) (string, error) {
	orig := v
	v = strings.TrimSpace(v)
	if !versionTextRe.MatchString(v) {
		return "", fmt.Errorf("invalid version %q", orig)
	}
	switch v {
	case "master", "trunk", "default":
		v = "dev-" + v
	}
	if len(v) >= 4 && strings.EqualFold(v[:4], "dev-") {
		return "dev-" + v[4:], nil
	}
	if i := strings.IndexByte(v, '+'); i > 0 { // build metadata
		v = v[:i]
	}
	var m []string
	idx := 0
	if m = classicVersionRe.FindStringSubmatch(v); m != nil {
		out := m[1]
		for _, p := range m[2:5] {
			if p == "" {
				p = ".0"
			}
			out += p
		}
		v, idx = out, 5
	} else if m = dateVersionRe.FindStringSubmatch(v); m != nil {
		v, idx = nonDigitRe.ReplaceAllString(m[1], "."), 2
	}
	if m != nil {
		if m[idx] != "" {
			if strings.EqualFold(m[idx], "stable") {
				return v, nil
			}
			v += "-" + expandStability(m[idx]) + strings.TrimLeft(m[idx+1], ".-")
		}
		if m[idx+2] != "" {
			v += "-dev"
		}
		return v, nil
	}
	if m := devSuffixRe.FindStringSubmatch(v); m != nil {
		if b := branchRe.FindStringSubmatch(m[1]); b != nil {
			out := ""
			for i := 1; i < 5; i++ {
				p := b[i]
				if p == "" {
					p = ".x"
				}
				out += strings.NewReplacer("*", "x", "X", "x").Replace(p)
			}
			return strings.ReplaceAll(out, "x", "9999999") + "-dev", nil
		}
	}
	return "", fmt.Errorf("invalid version %q (examples: 1.2.0, v2.0.0-beta1, 1.x-dev, dev-main)", orig)
}

func expandStability(s string) string {
	switch strings.ToLower(s) {
	case "a", "alpha":
		return "alpha"
	case "b", "beta":
		return "beta"
	case "p", "pl", "patch":
		return "patch"
	case "rc":
		return "RC"
	}
	return s
}

// IsDevVersion reports whether a normalized version is a development
// version (a branch): Composer 2 keeps those in the ~dev p2 file.
func IsDevVersion(normalized string) bool {
	return strings.HasPrefix(normalized, "dev-") || strings.HasSuffix(normalized, "-dev")
}

// HostedIndex is the index object of a published package: every version
// as its p2 entry, by normalized version.
type HostedIndex struct {
	Name     string             `json:"name"`
	Versions map[string]Version `json:"versions"`
	// Deleted keeps the sha1 of each deleted version's zip (a tombstone):
	// a version published once is never published again.
	Deleted map[string]string `json:"deleted,omitempty"`
}

// Shasum is the sha1 of a published version's zip ("" when none).
func (v Version) Shasum() string {
	d, _ := v["dist"].(map[string]any)
	s, _ := d["shasum"].(string)
	return s
}

// Republish tells what a publish of normalized with the zip whose sha1 is
// given would be: nil for a new version or an identical retry (same, true),
// else an error saying why it is refused.
func (x *HostedIndex) Republish(normalized, sha1 string) (same bool, err error) {
	if v, ok := x.Versions[normalized]; ok {
		if v.Shasum() == sha1 {
			return true, nil
		}
		return false, errVersionExists
	}
	if _, ok := x.Deleted[normalized]; ok {
		return false, errVersionDeleted
	}
	return false, nil
}

// ParseHostedIndex reads a stored index (nil: a new, empty one).
func ParseHostedIndex(b []byte, name string) (*HostedIndex, error) {
	x := &HostedIndex{Name: name, Versions: map[string]Version{}}
	if len(b) == 0 {
		return x, nil
	}
	if err := json.Unmarshal(b, x); err != nil {
		return nil, fmt.Errorf("index of %s is damaged: %w", name, err)
	}
	if x.Versions == nil {
		x.Versions = map[string]Version{}
	}
	return x, nil
}

// Marshal is the stored form.
func (x *HostedIndex) Marshal() []byte {
	b, _ := json.Marshal(x)
	return b
}

// HostedVersion builds the p2 entry of a published archive from its
// composer.json: the URL's version wins over the file's, extra.push (the
// composer-push plugin's settings, which may hold credentials) is
// dropped, and the dist names the proxy's own URL with the archive's
// sha1 as reference and shasum.
func HostedVersion(cj map[string]any, name, version, normalized, distURL, sha1, time string, source map[string]any) Version {
	v := Version{}
	for k, val := range cj {
		switch k {
		case "version", "version_normalized", "dist", "source", "time", "notification-url", "repositories":
			continue
		}
		v[k] = val
	}
	if extra, ok := v["extra"].(map[string]any); ok {
		delete(extra, "push")
		if len(extra) == 0 {
			delete(v, "extra")
		}
	}
	v["name"] = name
	v["version"] = version
	v["version_normalized"] = normalized
	v["time"] = time
	v["dist"] = map[string]any{"type": "zip", "url": distURL, "reference": sha1, "shasum": sha1}
	if source != nil {
		v["source"] = source
	}
	return v
}

// P2 renders the p2 file of the index: the stable versions, or (dev) the
// development ones; unminified, which Composer 2 reads as well.
func (x *HostedIndex) P2(dev bool) []byte {
	keys := make([]string, 0, len(x.Versions))
	for k := range x.Versions {
		if IsDevVersion(k) == dev {
			keys = append(keys, k)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(keys)))
	list := make([]Version, 0, len(keys))
	for _, k := range keys {
		list = append(list, x.Versions[k])
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(map[string]any{"packages": map[string]any{x.Name: list}})
	return bytes.TrimRight(buf.Bytes(), "\n")
}

// HostedRoot is the packages.json of a repository that only hosts: the
// same shape as a mirrored one (metadata-url and a preferred dist mirror
// at prefix), listing the names it has.
func HostedRoot(prefix string, names []string) []byte {
	out := rootFor(prefix)
	out["available-packages"] = append([]string{}, names...)
	b, _ := json.Marshal(out)
	return b
}

// WithAvailable adds names to a root's available-packages, when the root
// has that list (a client then asks for no other name, so a hosted name
// missing from it could not be installed).
func WithAvailable(root []byte, names []string) []byte {
	var m map[string]json.RawMessage
	if len(names) == 0 || json.Unmarshal(root, &m) != nil {
		return root
	}
	raw, ok := m["available-packages"]
	if !ok {
		return root
	}
	var list []string
	if json.Unmarshal(raw, &list) != nil {
		return root
	}
	seen := map[string]bool{}
	for _, n := range list {
		seen[n] = true
	}
	for _, n := range names {
		if !seen[n] {
			list = append(list, n)
		}
	}
	m["available-packages"], _ = json.Marshal(list)
	b, err := json.Marshal(m)
	if err != nil {
		return root
	}
	return b
}
