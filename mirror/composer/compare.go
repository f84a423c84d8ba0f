package composer

import (
	"strconv"
	"strings"
)

// CompareVersions orders two Composer versions as Composer's constraints
// do: normalized (1.2 → 1.2.0.0), by their four numbers, then stability
// (dev < alpha < beta < RC < stable < patch) and its number, a -dev
// suffix coming before the release it leads to; ok is false for branches
// (dev-main) and anything NormalizeVersion refuses.
func CompareVersions(a, b string) (int, bool) {
	ka, ok1 := composerKey(a)
	kb, ok2 := composerKey(b)
	if !ok1 || !ok2 {
		return 0, false
	}
	for i := range ka {
		if ka[i] != kb[i] {
			if ka[i] < kb[i] {
				return -1, true
			}
			return 1, true
		}
	}
	return 0, true
}

// composerKey is a version's place: four numbers, stability, its number,
// then 0 for a -dev snapshot of it and 1 for the release.
func composerKey(v string) ([7]int64, bool) {
	var k [7]int64
	n, err := NormalizeVersion(v)
	if err != nil || strings.HasPrefix(n, "dev-") {
		return k, false
	}
	num, suffix, _ := strings.Cut(n, "-")
	parts := strings.Split(num, ".")
	if len(parts) > 4 {
		return k, false
	}
	for i, p := range parts {
		x, err := strconv.ParseInt(p, 10, 64)
		if err != nil {
			return k, false
		}
		k[i] = x
	}
	k[4], k[6] = 4, 1 // stable, released
	if suffix == "" {
		return k, true
	}
	if rest, ok := strings.CutSuffix(suffix, "dev"); ok {
		suffix, k[6] = strings.TrimRight(rest, "-."), 0
		if suffix == "" {
			k[4] = 0 // 1.2.x-dev: before every release of it
			return k, true
		}
	}
	for name, rank := range map[string]int64{"alpha": 1, "beta": 2, "RC": 3, "patch": 5} {
		if s, ok := strings.CutPrefix(suffix, name); ok {
			k[4] = rank
			if s = strings.TrimLeft(s, ".-"); s != "" {
				x, err := strconv.ParseInt(strings.ReplaceAll(s, ".", ""), 10, 64)
				if err != nil {
					return k, false
				}
				k[5] = x
			}
			return k, true
		}
	}
	return k, false
}
