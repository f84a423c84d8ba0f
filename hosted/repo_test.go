package hosted

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/storage"
	"github.com/mirror-proxy/mirror-proxy/storage/local"
)

// Two replicas' repositories on one store: 20 versions published at once
// through both are all in the index, the name is owned once, and each
// replica sees the other's writes once its cached copy is dropped (a
// Redis message) or expires (the TTL).
func TestConcurrentPublishesAllSurvive(t *testing.T) {
	dir := t.TempDir()
	sa, _ := local.New(dir)
	sb, _ := local.New(dir)
	var told sync.Map
	a := New(Options{Store: sa, Prefix: "artifact/m", TTL: time.Hour, Notify: func(_ context.Context, key string) { told.Store(key, true) }})
	b := New(Options{Store: sb, Prefix: "artifact/m", TTL: time.Hour})
	ctx := context.Background()
	if owns, err := b.Owns(ctx, "acme/lib"); err != nil || owns {
		t.Fatalf("owns before any publish: %v %v", owns, err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := []*Repo{a, b}[i%2]
			if err := r.Update(ctx, "acme/lib", func(old []byte) ([]byte, error) {
				return append(old, fmt.Sprintf("1.%d.0\n", i)...), nil
			}); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	x, err := a.Index(ctx, "acme/lib")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(x.Body), "\n"); n != 20 {
		t.Errorf("%d versions in the index, want 20:\n%s", n, x.Body)
	}
	// b cached "not owned" for an hour: the message drops it.
	if owns, _ := b.Owns(ctx, "acme/lib"); owns {
		t.Log("b re-read the names after its own publish (fine)")
	}
	b.Invalidated("artifact/m/names.json")
	if owns, err := b.Owns(ctx, "acme/lib"); err != nil || !owns {
		t.Errorf("b does not see the published name: %v %v", owns, err)
	}
	if _, ok := told.Load("artifact/m/index/acme/lib.json"); !ok {
		t.Error("other replicas were not told of the index change")
	}
	n, _ := a.Names(ctx)
	if len(n.List) != 1 || n.List[0] != "acme/lib" {
		t.Errorf("names: %v", n.List)
	}
}

// A change that refuses leaves everything as it was and returns its error.
func TestRefusedChangeWritesNothing(t *testing.T) {
	st, _ := local.New(t.TempDir())
	r := New(Options{Store: st, Prefix: "artifact/m"})
	refused := errors.New("exists")
	if err := r.Update(context.Background(), "p", func([]byte) ([]byte, error) { return nil, refused }); err != refused {
		t.Fatalf("err = %v, want the change's own", err)
	}
	var keys []string
	_ = st.List(context.Background(), "artifact/", func(i storage.Info) error { keys = append(keys, i.Key); return nil })
	if len(keys) != 0 {
		t.Errorf("stored after a refused change: %v", keys)
	}
}

// downStore fails every call.
type downStore struct{ storage.Store }

func (downStore) Get(context.Context, string, storage.Range) (io.ReadCloser, storage.Info, error) {
	return nil, storage.Info{}, errors.New("down")
}

// A replica that never read the names cannot tell what it owns: it says
// so (503 upstream of here) rather than answer "not owned".
func TestNamesUnknownWhenStorageNeverAnswered(t *testing.T) {
	r := New(Options{Store: downStore{}, Prefix: "artifact/m"})
	if _, err := r.Owns(context.Background(), "x"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("err = %v, want ErrUnavailable", err)
	}
}
