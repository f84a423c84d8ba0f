package fetch

import (
	"sync"
	"time"

	"github.com/mirror-proxy/mirror-proxy/policy"
)

// DerivedKey names a value derived from stored documents: the IDs of the
// stored entries it comes from (never the entries themselves, which the
// cache would keep alive) and the snapshot day it was filtered for.
type DerivedKey struct {
	ID, ID2 uint64
	Day     string
}

// Derived keeps what is derived from a stored document under a policy
// (the document filtered by a cooldown), computed once per stored version
// and kept while the policy's window holds: a request costs a map lookup
// under a read lock, and allocates nothing.
type Derived struct {
	mu sync.RWMutex
	m  map[DerivedKey]derived
}

type derived struct {
	v      any
	window policy.Window
}

// maxDerived bounds the derived values kept (the least used are simply
// computed again).
const maxDerived = 4096

// Lookup returns the value derived for key while its window holds at now.
func (d *Derived) Lookup(key DerivedKey, now time.Time) (any, bool) {
	d.mu.RLock()
	v, ok := d.m[key]
	d.mu.RUnlock()
	if ok && v.window.Valid(now) {
		return v.v, true
	}
	return nil, false
}

// Get returns the value derived for key, computing it with make when there
// is none or its window has passed. Callers on a hot path call Lookup
// first, so that the closure is built only on a miss.
func (d *Derived) Get(key DerivedKey, now time.Time, make func() (any, policy.Window)) any {
	if v, ok := d.Lookup(key, now); ok {
		return v
	}
	x, w := make()
	if x != nil { // a failure is not kept: the next request tries again
		d.put(key, x, w)
	}
	return x
}

func (d *Derived) put(key DerivedKey, x any, w policy.Window) {
	d.mu.Lock()
	if d.m == nil || len(d.m) >= maxDerived {
		d.m = map[DerivedKey]derived{}
	}
	d.m[key] = derived{x, w}
	d.mu.Unlock()
}

// Doc is Get for a rendered document: make's error is returned, and
// nothing is kept for it.
func (d *Derived) Doc(key DerivedKey, now time.Time, make func() (*Doc, policy.Window, error)) (*Doc, error) {
	if v, ok := d.Lookup(key, now); ok {
		return v.(*Doc), nil
	}
	doc, w, err := make()
	if err != nil {
		return nil, err
	}
	d.put(key, doc, w)
	return doc, nil
}
