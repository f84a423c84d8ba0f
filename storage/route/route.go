// Package route keeps parts of the key space in stores of their own
// (STORAGE_CLASSES): each key goes to the store of its longest routed
// prefix ("artifact", "mirror-dist/npm"), else to the default store. A
// prefix matches whole segments: "mirror-dist/npm" routes
// "mirror-dist/npm/..." but not "mirror-dist/npmjs/...". Lists span the
// stores that hold part of the listed prefix, and each key is reported by
// the store that owns it only.
package route

import (
	"context"
	"io"
	"sort"
	"strings"

	"github.com/mirror-proxy/mirror-proxy/storage"
)

// Store routes keys to stores by prefix.
type Store struct {
	def    storage.Store
	routes []routed // longest prefix first
}

type routed struct {
	prefix string // without a trailing "/"
	store  storage.Store
}

var _ storage.Store = (*Store)(nil)

// New routes every key under a prefix of routes to its store, and the
// rest to def.
func New(def storage.Store, routes map[string]storage.Store) *Store {
	s := &Store{def: def}
	for p, st := range routes {
		s.routes = append(s.routes, routed{prefix: strings.Trim(p, "/"), store: st})
	}
	sort.Slice(s.routes, func(i, j int) bool { return len(s.routes[i].prefix) > len(s.routes[j].prefix) })
	return s
}

// under reports whether key is prefix or below it.
func under(key, prefix string) bool {
	return key == prefix || strings.HasPrefix(key, prefix+"/")
}

// owner is the store of key.
func (s *Store) owner(key string) storage.Store {
	for _, r := range s.routes {
		if under(key, r.prefix) {
			return r.store
		}
	}
	return s.def
}

func (s *Store) Get(ctx context.Context, key string, rng storage.Range) (io.ReadCloser, storage.Info, error) {
	return s.owner(key).Get(ctx, key, rng)
}

func (s *Store) Stat(ctx context.Context, key string) (storage.Info, error) {
	return s.owner(key).Stat(ctx, key)
}

func (s *Store) Put(ctx context.Context, key string, r io.Reader, opts storage.PutOptions) error {
	return s.owner(key).Put(ctx, key, r, opts)
}

func (s *Store) Delete(ctx context.Context, key string) error {
	return s.owner(key).Delete(ctx, key)
}

// List lists prefix in every store that may hold part of it: the store
// that owns the prefix itself, and each routed store whose prefix lies
// below it (listed from its own prefix). A key is reported by its owner
// only, so a key left in the default store under a routed prefix (written
// before the route existed) is not listed.
func (s *Store) List(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	type part struct {
		st   storage.Store
		from string
	}
	p := strings.TrimSuffix(prefix, "/")
	parts := []part{{s.owner(p), prefix}}
	for _, r := range s.routes {
		if under(r.prefix, p) && r.prefix != p {
			parts = append(parts, part{r.store, r.prefix + "/"})
		}
	}
	for i, x := range parts {
		covered := false // by a shorter listing of the same store
		for j, y := range parts {
			if j != i && y.st == x.st && strings.HasPrefix(x.from, y.from) && (len(y.from) < len(x.from) || j < i) {
				covered = true
				break
			}
		}
		if covered {
			continue
		}
		err := x.st.List(ctx, x.from, func(i storage.Info) error {
			if s.owner(i.Key) != x.st {
				return nil
			}
			return fn(i)
		})
		if err != nil {
			return err
		}
	}
	return nil
}
