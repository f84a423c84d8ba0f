package cran

import "strings"

// CompareVersions orders two R package versions as R's package_version
// does: numbers separated by '.' or '-', compared one by one as integers,
// a version that is a prefix of another being the smaller ("1.2" <
// "1.2-1" < "1.10"). ok is false when either is not such a version.
func CompareVersions(a, b string) (int, bool) {
	pa, ok := versionParts(a)
	if !ok {
		return 0, false
	}
	pb, ok := versionParts(b)
	if !ok {
		return 0, false
	}
	for i := 0; i < len(pa) && i < len(pb); i++ {
		if c := compareNumbers(pa[i], pb[i]); c != 0 {
			return c, true
		}
	}
	switch {
	case len(pa) < len(pb):
		return -1, true
	case len(pa) > len(pb):
		return 1, true
	}
	return 0, true
}

// versionParts splits a version into its numbers (leading zeros
// dropped), or says it is not one.
func versionParts(v string) ([]string, bool) {
	if v == "" {
		return nil, false
	}
	parts := strings.FieldsFunc(v, func(r rune) bool { return r == '.' || r == '-' })
	if len(parts) == 0 || len(parts) != strings.Count(v, ".")+strings.Count(v, "-")+1 {
		return nil, false // an empty part: "1..2", "1.", "-1"
	}
	for i, p := range parts {
		for _, c := range p {
			if c < '0' || c > '9' {
				return nil, false
			}
		}
		if p = strings.TrimLeft(p, "0"); p == "" {
			p = "0"
		}
		parts[i] = p
	}
	return parts, true
}

// compareNumbers orders two decimal numbers without leading zeros, of
// any length.
func compareNumbers(a, b string) int {
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}
