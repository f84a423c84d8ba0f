package osv

import (
	"strconv"
	"strings"
)

// SemVer orders Semantic Versioning 2.0 versions (npm's; a leading "v" and
// build metadata are ignored): major.minor.patch, then a release is newer
// than its pre-releases, whose dot-separated identifiers compare
// numerically when numeric, else in ASCII order.
func SemVer(a, b string) (int, bool) {
	pa, ok1 := parseSemVer(a)
	pb, ok2 := parseSemVer(b)
	if !ok1 || !ok2 {
		return 0, false
	}
	for i := 0; i < 3; i++ {
		if pa.n[i] != pb.n[i] {
			if pa.n[i] < pb.n[i] {
				return -1, true
			}
			return 1, true
		}
	}
	switch {
	case pa.pre == "" && pb.pre == "":
		return 0, true
	case pa.pre == "":
		return 1, true
	case pb.pre == "":
		return -1, true
	}
	xa, xb := strings.Split(pa.pre, "."), strings.Split(pb.pre, ".")
	for i := 0; i < len(xa) && i < len(xb); i++ {
		na, ea := strconv.ParseUint(xa[i], 10, 64)
		nb, eb := strconv.ParseUint(xb[i], 10, 64)
		switch {
		case ea == nil && eb == nil:
			if na != nb {
				if na < nb {
					return -1, true
				}
				return 1, true
			}
		case ea == nil:
			return -1, true // numeric identifiers come first
		case eb == nil:
			return 1, true
		default:
			if c := strings.Compare(xa[i], xb[i]); c != 0 {
				return c, true
			}
		}
	}
	switch {
	case len(xa) < len(xb):
		return -1, true
	case len(xa) > len(xb):
		return 1, true
	}
	return 0, true
}

type semver struct {
	n   [3]uint64
	pre string
}

func parseSemVer(s string) (semver, bool) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "v")
	s, _, _ = strings.Cut(s, "+")
	core, pre, _ := strings.Cut(s, "-")
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return semver{}, false
	}
	var v semver
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return semver{}, false
		}
		v.n[i] = n
	}
	v.pre = pre
	return v, true
}
