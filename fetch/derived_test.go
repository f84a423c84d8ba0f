package fetch

import (
	"errors"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/policy"
)

// A derivation that fails is not kept: the next request derives again
// (before, a nil was kept, and the next Lookup's type assertion panicked).
func TestDerivedKeepsNoFailure(t *testing.T) {
	var d Derived
	key := DerivedKey{ID: 1}
	now := time.Now()
	calls := 0
	fail := func() (*Doc, policy.Window, error) { calls++; return nil, policy.Window{}, errors.New("damaged") }
	for i := 0; i < 2; i++ {
		if _, err := d.Doc(key, now, fail); err == nil {
			t.Fatal("no error")
		}
	}
	if calls != 2 {
		t.Errorf("make called %d times, want 2", calls)
	}
	if v := d.Get(key, now, func() (any, policy.Window) { return nil, policy.Window{} }); v != nil {
		t.Errorf("Get: %v", v)
	}
	if _, ok := d.Lookup(key, now); ok {
		t.Error("a failed derivation was kept")
	}
	doc := NewDoc([]byte("x"), "t")
	got, err := d.Doc(key, now, func() (*Doc, policy.Window, error) { return doc, policy.Window{}, nil })
	if err != nil || got != doc {
		t.Fatal(err)
	}
	if v, ok := d.Lookup(key, now); !ok || v.(*Doc) != doc {
		t.Error("the derived document was not kept")
	}
}
