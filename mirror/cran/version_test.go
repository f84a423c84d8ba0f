package cran

import "testing"

func TestCompareVersions(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"1.2", "1.2-1", -1}, {"1.2-1", "1.10", -1}, {"1.9.9", "1.10", -1}, {"0.4-10", "0.4-9", 1},
		{"1.02", "1.2", 0}, {"1-2", "1.2", 0}, {"2024.1.2", "2024.01.02", 0}, {"99999999999999999999.1", "99999999999999999998.9", 1},
		{"1", "1.0", -1},
	} {
		if got, ok := CompareVersions(c.a, c.b); !ok || got != c.want {
			t.Errorf("%s vs %s: %d %v, want %d", c.a, c.b, got, ok, c.want)
		}
		if got, ok := CompareVersions(c.b, c.a); !ok || got != -c.want {
			t.Errorf("%s vs %s: %d %v, want %d", c.b, c.a, got, ok, -c.want)
		}
	}
	for _, bad := range []string{"", "1..2", "1.", "-1", "1.2a", "v1.2", "1.2 "} {
		if _, ok := CompareVersions(bad, "1.0"); ok {
			t.Errorf("%q read as a version", bad)
		}
	}
}
