package fetch

import (
	"net/http"
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
	// Form tells apart what is derived from the same entries for distinct
	// requests (a conda subdir of a hosted-only channel, whose IDs are
	// those of the channel's hosted index).
	Form string
}

// Derived keeps what is derived from a stored document under a policy
// (the document filtered by a cooldown), computed once per stored version
// and kept while the policy's window holds: a request costs a map lookup
// under a read lock, and allocates nothing.
type Derived struct {
	mu    sync.RWMutex
	m     map[DerivedKey]derived
	bytes int64 // the Weight of the values kept
}

type derived struct {
	v      any
	window policy.Window
	weight int64
}

// weigher is a derived value that says how much memory it holds.
type weigher interface{ Weight() int64 }

// maxDerived and maxDerivedBytes bound what one Derived keeps (values
// that are not Weighers count for nothing): past either, everything is
// dropped, and computed again as requests ask for it. Filtered documents
// are copies of stored ones; without a bound in bytes, a few thousand
// large ones would sit outside the memory cache's budget.
const (
	maxDerived      = 4096
	maxDerivedBytes = 64 << 20
)

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

// Replayable marks the response w is about to get, a document filtered
// into the value kept for key, as replayable while the window it was
// filtered under holds (ReplayableFiltered); a dated snapshot's never is.
func (d *Derived) Replayable(w http.ResponseWriter, r *http.Request, key DerivedKey, ttl time.Duration, from ...ReplayFrom) {
	if _, snap := policy.Snapshot(r); snap {
		return
	}
	d.mu.RLock()
	v, ok := d.m[key]
	d.mu.RUnlock()
	if ok { // a replay of a form filtered with advisory data ends when the data changes
		ReplayableFiltered(w, ttl, v.window, from...)
	}
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
	var weight int64
	if wx, ok := x.(weigher); ok {
		weight = wx.Weight()
	}
	d.mu.Lock()
	if old, ok := d.m[key]; ok {
		d.bytes -= old.weight
		delete(d.m, key)
	}
	if d.m == nil || len(d.m) >= maxDerived || d.bytes+weight > maxDerivedBytes {
		d.m, d.bytes = map[DerivedKey]derived{}, 0
	}
	if weight <= maxDerivedBytes {
		d.m[key] = derived{x, w, weight}
		d.bytes += weight
	}
	d.mu.Unlock()
}

// Bytes is the Weight of the values kept.
func (d *Derived) Bytes() int64 {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.bytes
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
