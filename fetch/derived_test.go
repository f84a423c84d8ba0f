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

// Derived documents are bounded in bytes, not only in number: large
// filtered copies never add up past maxDerivedBytes.
func TestDerivedBoundedInBytes(t *testing.T) {
	var d Derived
	now := time.Now()
	body := make([]byte, 5<<20) // compresses to almost nothing; weighs 5 MiB
	for i := range body {
		body[i] = byte(i * 7919 >> 3) // some variety
	}
	doc := NewDoc(body, "t")
	per := doc.Weight()
	for i := uint64(1); i <= 50; i++ {
		if _, err := d.Doc(DerivedKey{ID: i}, now, func() (*Doc, policy.Window, error) { return doc, policy.Window{}, nil }); err != nil {
			t.Fatal(err)
		}
		if b := d.Bytes(); b > maxDerivedBytes {
			t.Fatalf("after %d documents of %d bytes: %d bytes kept, over %d", i, per, b, maxDerivedBytes)
		}
	}
	if _, ok := d.Lookup(DerivedKey{ID: 50}, now); !ok {
		t.Error("the last document was not kept")
	}
	// Replacing a key does not count it twice.
	before := d.Bytes()
	d.Doc(DerivedKey{ID: 50}, now.Add(time.Hour), func() (*Doc, policy.Window, error) { return doc, policy.Window{}, nil })
	if d.Bytes() != before {
		t.Errorf("replacing a document: %d bytes, was %d", d.Bytes(), before)
	}
}
