package fetch

import (
	"sync"
	"time"

	"github.com/mirror-proxy/mirror-proxy/policy"
)

// Derived keeps what is derived from a stored document under a policy
// (the document filtered by a cooldown), computed once per stored version
// and kept while the policy's window holds: a request costs a map lookup.
type Derived struct {
	mu sync.Mutex
	m  map[any]derived
}

type derived struct {
	v      any
	window policy.Window
}

// maxDerived bounds the derived values kept (the least used are simply
// computed again).
const maxDerived = 4096

// Get returns the value derived for key (the ID of the stored entry it
// comes from, and anything else it depends on: never the entry itself,
// which the cache would keep alive), computing it with make when there is
// none or its window has passed.
func (d *Derived) Get(key any, now time.Time, make func() (any, policy.Window)) any {
	d.mu.Lock()
	v, ok := d.m[key]
	d.mu.Unlock()
	if ok && v.window.Valid(now) {
		return v.v
	}
	x, w := make()
	d.mu.Lock()
	if d.m == nil || len(d.m) >= maxDerived {
		d.m = map[any]derived{}
	}
	d.m[key] = derived{x, w}
	d.mu.Unlock()
	return x
}
