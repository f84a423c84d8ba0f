// Package cache holds the proxy's disposable caches: an in-memory LRU
// bounded in bytes (metadata) and an on-disk LRU bounded in bytes
// (metadata and files). Losing either loses no data: storage is the system
// of record.
package cache

import (
	"math"
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// Memory is an LRU cache bounded by the total size of its values, as
// reported by the caller, rather than by their number: one Packagist p2
// file can weigh a thousand times another.
type Memory[V any] struct {
	mu   sync.Mutex
	lru  *simplelru.LRU[string, sized[V]]
	used int64
	max  int64
}

type sized[V any] struct {
	v    V
	size int64
}

// NewMemory returns a cache holding at most maxBytes of values.
func NewMemory[V any](maxBytes int64) *Memory[V] {
	m := &Memory[V]{max: maxBytes}
	m.lru, _ = simplelru.NewLRU[string, sized[V]](math.MaxInt32, func(_ string, s sized[V]) {
		m.used -= s.size // runs under m.mu: every call into lru holds it
	})
	return m
}

// Get returns the value for key and marks it recently used.
func (m *Memory[V]) Get(key string) (V, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.lru.Get(key)
	return s.v, ok
}

// Add stores v, weighing size bytes, evicting least recently used values
// until the total fits. A value larger than the whole budget is not kept.
func (m *Memory[V]) Add(key string, v V, size int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lru.Remove(key)
	if size > m.max {
		return
	}
	m.lru.Add(key, sized[V]{v, size})
	m.used += size
	for m.used > m.max {
		if _, _, ok := m.lru.RemoveOldest(); !ok {
			break
		}
	}
}

// Resize changes the weight of key's value if it is still v (a value
// that grew after it was added, such as an index built from it), evicting
// others (or it) until the total fits again.
func (m *Memory[V]) Resize(key string, same func(V) bool, size int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.lru.Peek(key)
	if !ok || !same(s.v) {
		return
	}
	if size > m.max {
		m.lru.Remove(key)
		return
	}
	m.used += size - s.size
	s.size = size
	m.lru.Add(key, s) // updating in place runs no eviction callback
	for m.used > m.max {
		if _, _, ok := m.lru.RemoveOldest(); !ok {
			break
		}
	}
}

// Remove drops key.
func (m *Memory[V]) Remove(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lru.Remove(key)
}

// Purge drops everything.
func (m *Memory[V]) Purge() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lru.Purge()
}

// Used is the total size of the values held.
func (m *Memory[V]) Used() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.used
}
