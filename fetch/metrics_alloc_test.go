package fetch

import "testing"

// A cache lookup is counted without allocating (every warm request
// counts one).
func TestCountingALookupAllocatesNothing(t *testing.T) {
	m := newMetrics(false)
	m.mirrorOf = func(key string) string { return "npm" }
	m.hit("mirror-meta/npm/x", "memory")
	if n := testing.AllocsPerRun(1000, func() { m.hit("mirror-meta/npm/x", "memory"); m.miss("mirror-dist/npm/y", "disk") }); n != 0 {
		t.Errorf("counting a lookup allocates %.1f times", n)
	}
}
