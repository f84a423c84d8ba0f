package policy

import (
	"fmt"
	"path"
	"strings"
)

// Rules are the allow and deny lists of a mirror.
type Rules struct {
	// Allow, when not empty, is strict mode: only names matching one of
	// these patterns are served.
	Allow []string
	// Deny lists whole packages or single versions that are never served.
	Deny []Deny
	// Advisor, when set, refuses versions that known advisories name.
	Advisor Advisor
}

// Deny is one deny entry: a name pattern, and a version ("" for every
// version).
type Deny struct{ Name, Version string }

// ParseDeny reads "evil-pkg", "left-pad@1.3.0", "@scope/pkg@1.0.0",
// "requests==2.99.0" or "vendor/pkg:1.2.3".
func ParseDeny(s string) (Deny, error) {
	s = strings.TrimSpace(s)
	d := Deny{Name: s}
	switch {
	case strings.Contains(s, "=="):
		d.Name, d.Version, _ = strings.Cut(s, "==")
	case strings.LastIndexByte(s, '@') > 0:
		i := strings.LastIndexByte(s, '@')
		d.Name, d.Version = s[:i], s[i+1:]
	case strings.Contains(s, ":"):
		d.Name, d.Version, _ = strings.Cut(s, ":")
	}
	d.Name, d.Version = strings.TrimSpace(d.Name), strings.TrimSpace(d.Version)
	if _, err := path.Match(d.Name, ""); err != nil || d.Name == "" || (d.Version == "" && s != d.Name) {
		return Deny{}, fmt.Errorf("%q is not a deny rule (examples: evil-pkg, left-pad@1.3.0, requests==2.99.0, vendor/pkg:1.2.3)", s)
	}
	return d, nil
}

func match(pattern, name string) bool {
	ok, _ := path.Match(pattern, name)
	return ok || pattern == name
}

// Normalized returns the rules with their names normalized as the
// ecosystem normalizes names (PyPI's PEP 503).
func (r Rules) Normalized(norm func(string) string) Rules {
	out := Rules{Advisor: r.Advisor}
	for _, a := range r.Allow {
		out.Allow = append(out.Allow, norm(a))
	}
	for _, d := range r.Deny {
		out.Deny = append(out.Deny, Deny{Name: norm(d.Name), Version: d.Version})
	}
	return out
}

// Refuse says why name is not served at all ("" : it is).
func (r Rules) Refuse(name string) string {
	if len(r.Allow) > 0 {
		ok := false
		for _, a := range r.Allow {
			ok = ok || match(a, name)
		}
		if !ok {
			return fmt.Sprintf("%s is not approved on this mirror (it is not on the mirror's allow list)", name)
		}
	}
	for _, d := range r.Deny {
		if d.Version == "" && match(d.Name, name) {
			return fmt.Sprintf("%s is denied by the mirror's policy (deny: %s)", name, d.Name)
		}
	}
	return ""
}

// Filters reports whether some versions of name are denied (by a rule or
// an advisory).
func (r Rules) Filters(name string) bool {
	for _, d := range r.Deny {
		if d.Version != "" && match(d.Name, name) {
			return true
		}
	}
	return r.Advisor != nil && r.Advisor.Names(name)
}

// DenyVersion says why a deny rule refuses a version of name ("" : none
// does; the Advisor is Judge's to ask);
// versions are the spellings of the version (as given, normalized).
func (r Rules) DenyVersion(name string, versions ...string) string {
	for _, d := range r.Deny {
		if d.Version == "" || !match(d.Name, name) {
			continue
		}
		for _, v := range versions {
			if v != "" && strings.EqualFold(v, d.Version) {
				return fmt.Sprintf("%s %s is denied by the mirror's policy (deny: %s %s)", name, v, d.Name, d.Version)
			}
		}
	}
	return ""
}
