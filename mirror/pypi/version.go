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

// pep440Key is a version's place in PEP 440's order.
type pep440Key struct {
	epoch   uint64
	release []uint64
	pre     [2]int64 // phase (-2: a dev-only release, before any pre; 0 a, 1 b, 2 rc; 3: none) and number
	post    int64    // -1: none
	dev     int64    // 1<<62: none
	local   string
}

// ComparePEP440 orders two versions as PEP 440 does (epoch, release with
// trailing zeros ignored, pre-releases, post-releases, development
// releases, then local labels); ok is false when either is not a PEP 440
// version.
func ComparePEP440(a, b string) (int, bool) {
	ka, ok1 := pep440Of(a)
	kb, ok2 := pep440Of(b)
	if !ok1 || !ok2 {
		return 0, false
	}
	cmp := func(x, y int64) int {
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	}
	if c := cmp(int64(ka.epoch), int64(kb.epoch)); c != 0 {
		return c, true
	}
	for i := 0; i < max(len(ka.release), len(kb.release)); i++ {
		var x, y uint64
		if i < len(ka.release) {
			x = ka.release[i]
		}
		if i < len(kb.release) {
			y = kb.release[i]
		}
		if x != y {
			if x < y {
				return -1, true
			}
			return 1, true
		}
	}
	for _, c := range []int{cmp(ka.pre[0], kb.pre[0]), cmp(ka.pre[1], kb.pre[1]), cmp(ka.post, kb.post), cmp(ka.dev, kb.dev)} {
		if c != 0 {
			return c, true
		}
	}
	return strings.Compare(ka.local, kb.local), true
}

func pep440Of(version string) (pep440Key, bool) {
	m := pep440.FindStringSubmatch(strings.ToLower(version))
	if m == nil {
		return pep440Key{}, false
	}
	n := func(s string) int64 {
		v, _ := strconv.ParseInt(s, 10, 64)
		return v
	}
	k := pep440Key{post: -1, dev: 1 << 62, local: m[10]}
	if m[1] != "" {
		k.epoch = uint64(n(m[1]))
	}
	for _, p := range strings.Split(m[2], ".") {
		k.release = append(k.release, uint64(n(p)))
	}
	switch {
	case m[3] != "":
		k.pre = [2]int64{map[string]int64{"a": 0, "alpha": 0, "b": 1, "beta": 1, "c": 2, "rc": 2, "pre": 2, "preview": 2}[m[3]], n(m[4])}
	case m[8] != "" && m[5] == "" && m[6] == "":
		k.pre = [2]int64{-2, 0} // 1.0.dev1 comes before 1.0a1
	default:
		k.pre = [2]int64{3, 0}
	}
	if m[5] != "" {
		k.post = n(m[5])
	} else if m[6] != "" {
		k.post = n(m[7])
	}
	if m[8] != "" {
		k.dev = n(m[9])
	}
	return k, true
}
