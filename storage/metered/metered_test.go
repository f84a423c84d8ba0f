package metered_test

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/storage"
	"github.com/mirror-proxy/mirror-proxy/storage/local"
	"github.com/mirror-proxy/mirror-proxy/storage/metered"
	"github.com/mirror-proxy/mirror-proxy/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		s, err := local.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return metered.New(s, func(op, result string, took time.Duration) {})
	})
}

// Every call is counted once, by operation and result.
func TestCountsEachCallByResult(t *testing.T) {
	s, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	got := map[string]int{}
	m := metered.New(s, func(op, result string, took time.Duration) { mu.Lock(); got[op+" "+result]++; mu.Unlock() })
	ctx := context.Background()
	_, _ = m.Stat(ctx, "a/b")
	_ = m.Put(ctx, "a/b", bytes.NewReader([]byte("x")), storage.PutOptions{Size: 1, CreateOnly: true})
	_ = m.Put(ctx, "a/b", bytes.NewReader([]byte("x")), storage.PutOptions{Size: 1, CreateOnly: true})
	if rc, _, err := m.Get(ctx, "a/b", storage.Whole); err == nil {
		rc.Close()
	}
	_ = m.List(ctx, "a/", func(storage.Info) error { return nil })
	_ = m.Delete(ctx, "a/b")
	want := map[string]int{"stat not_found": 1, "put ok": 1, "put exists": 1, "get ok": 1, "list ok": 1, "delete ok": 1}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%s counted %d times, want %d (all: %v)", k, got[k], n, got)
		}
	}
}
