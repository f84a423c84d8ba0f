package pypi

import (
	"regexp"
	"strconv"
	"strings"
)

// pep440 is PEP 440's version grammar with its accepted spellings (as
// the packaging library reads versions).
var pep440 = regexp.MustCompile(`^\s*v?(?:(?:(\d+)!)?(\d+(?:\.\d+)*)` +
	`(?:[-_.]?(a|b|c|rc|alpha|beta|pre|preview)[-_.]?(\d+)?)?` +
	`(?:-(\d+)|[-_.]?(post|rev|r)[-_.]?(\d+)?)?` +
	`(?:[-_.]?(dev)[-_.]?(\d+)?)?)` +
	`(?:\+([a-z0-9]+(?:[-_.][a-z0-9]+)*))?\s*$`)

// CanonicalVersion is version in PEP 440's normal form, with the release's
// trailing zeros dropped (so 1.0, 1.0.0 and v1.0 are one version, as
// packaging's canonicalize_version makes them); a version PEP 440 does not
// read is only lowered.
func CanonicalVersion(version string) string {
	v := strings.ToLower(version)
	m := pep440.FindStringSubmatch(v)
	if m == nil {
		return strings.TrimSpace(v)
	}
	num := func(s string) string {
		if s == "" {
			return "0"
		}
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return s
		}
		return strconv.FormatUint(n, 10)
	}
	var b strings.Builder
	if m[1] != "" && num(m[1]) != "0" {
		b.WriteString(num(m[1]) + "!")
	}
	rel := strings.Split(m[2], ".")
	for i := range rel {
		rel[i] = num(rel[i])
	}
	for len(rel) > 1 && rel[len(rel)-1] == "0" {
		rel = rel[:len(rel)-1]
	}
	b.WriteString(strings.Join(rel, "."))
	if m[3] != "" {
		pre := map[string]string{"a": "a", "alpha": "a", "b": "b", "beta": "b", "c": "rc", "rc": "rc", "pre": "rc", "preview": "rc"}[m[3]]
		b.WriteString(pre + num(m[4]))
	}
	if m[5] != "" {
		b.WriteString(".post" + num(m[5]))
	} else if m[6] != "" {
		b.WriteString(".post" + num(m[7]))
	}
	if m[8] != "" {
		b.WriteString(".dev" + num(m[9]))
	}
	if m[10] != "" {
		b.WriteString("+" + strings.NewReplacer("-", ".", "_", ".").Replace(m[10]))
	}
	return b.String()
}
