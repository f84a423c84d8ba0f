package route_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/mirror-proxy/mirror-proxy/storage"
	"github.com/mirror-proxy/mirror-proxy/storage/local"
	"github.com/mirror-proxy/mirror-proxy/storage/route"
	"github.com/mirror-proxy/mirror-proxy/storage/storagetest"
)

func newLocal(t *testing.T) *local.Store {
	t.Helper()
	s, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The conformance suite, with its keys in a routed store.
func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		return route.New(newLocal(t), map[string]storage.Store{"conformance": newLocal(t), "other": newLocal(t)})
	})
}

func keys(t *testing.T, s storage.Store, prefix string) []string {
	t.Helper()
	var got []string
	if err := s.List(context.Background(), prefix, func(i storage.Info) error { got = append(got, i.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	return got
}

// Each key lives in the store of its longest routed prefix (whole
// segments only), and lists span the stores.
func TestKeysGoToTheirStores(t *testing.T) {
	def, art, npm := newLocal(t), newLocal(t), newLocal(t)
	s := route.New(def, map[string]storage.Store{"artifact": art, "mirror-dist/npm": npm})
	ctx := context.Background()
	all := []string{"artifact/p/a.zip", "mirror-dist/npm/x/y.tgz", "mirror-dist/npmjs/z.tgz", "mirror-dist/pypi/w.whl", "mirror-meta/m/p.json"}
	for _, k := range all {
		if err := s.Put(ctx, k, strings.NewReader(k), storage.PutOptions{Size: int64(len(k))}); err != nil {
			t.Fatal(err)
		}
	}
	for st, want := range map[storage.Store][]string{
		def: {"mirror-dist/npmjs/z.tgz", "mirror-dist/pypi/w.whl", "mirror-meta/m/p.json"},
		art: {"artifact/p/a.zip"},
		npm: {"mirror-dist/npm/x/y.tgz"},
	} {
		for _, k := range all {
			_, err := st.Stat(ctx, k)
			in := false
			for _, w := range want {
				in = in || w == k
			}
			if (err == nil) != in {
				t.Errorf("%s in the wrong store (stat: %v)", k, err)
			}
		}
	}
	for prefix, want := range map[string]string{
		"mirror-dist/":     "[mirror-dist/npm/x/y.tgz mirror-dist/npmjs/z.tgz mirror-dist/pypi/w.whl]",
		"mirror-dist/npm/": "[mirror-dist/npm/x/y.tgz]",
		"artifact/":        "[artifact/p/a.zip]",
		"mirror-meta/":     "[mirror-meta/m/p.json]",
	} {
		if got := fmt.Sprint(keys(t, s, prefix)); got != want {
			t.Errorf("List %s = %s, want %s", prefix, got, want)
		}
	}
	for _, k := range all {
		rc, _, err := s.Get(ctx, k, storage.Whole)
		if err != nil {
			t.Fatalf("Get %s: %v", k, err)
		}
		rc.Close()
	}
}
