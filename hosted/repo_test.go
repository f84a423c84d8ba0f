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

	"github.com/mirror-proxy/mirror-proxy/internal/faultstore"
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

// A first publish (a file, then the index) interrupted at each of its
// writes, before or after the write lands: the name ends owned once the
// publish is retried, the retry succeeds, and the file and index agree.
func TestFirstPublishInterruptedAtEachWrite(t *testing.T) {
	publish := func(r *Repo) error {
		ctx := context.Background()
		body := "bytes of 1.0"
		if err := r.PutFile(ctx, "files/sha-1/p-1.0.tgz", strings.NewReader(body), int64(len(body)), ""); err != nil {
			return err
		}
		return r.Update(ctx, "p", func(old []byte) ([]byte, error) {
			if strings.Contains(string(old), "1.0 files/sha-1/p-1.0.tgz\n") {
				return old, nil // this very version: an identical retry
			}
			if strings.Contains(string(old), "1.0 ") {
				return nil, errors.New("1.0 was published with other bytes")
			}
			return append(old, "1.0 files/sha-1/p-1.0.tgz\n"...), nil
		})
	}
	for _, landed := range []bool{false, true} {
		for step := 1; step <= 3; step++ { // file, names, index
			t.Run(fmt.Sprintf("step%d-landed=%v", step, landed), func(t *testing.T) {
				st, _ := local.New(t.TempDir())
				fs := &faultstore.Store{Store: st, N: step, Landed: landed}
				r := New(Options{Store: fs, Prefix: "artifact/m", TTL: time.Hour})
				if err := publish(r); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), faultstore.ErrInjected.Error()) {
					t.Fatalf("first publish: %v, want the injected fault", err)
				}
				if err := publish(r); err != nil {
					t.Fatalf("retry: %v", err)
				}
				// A fresh replica sees the name owned and the version indexed.
				fresh := New(Options{Store: st, Prefix: "artifact/m"})
				if owns, err := fresh.Owns(context.Background(), "p"); err != nil || !owns {
					t.Errorf("owned after the retry: %v %v", owns, err)
				}
				x, err := fresh.Index(context.Background(), "p")
				if err != nil || string(x.Body) != "1.0 files/sha-1/p-1.0.tgz\n" {
					t.Errorf("index after the retry: %q %v", x.Body, err)
				}
				if _, err := fresh.Stat(context.Background(), "files/sha-1/p-1.0.tgz"); err != nil {
					t.Errorf("file: %v", err)
				}
			})
		}
	}
}

// Without retry, a fault after the name was claimed leaves it owned (no
// upstream version is served under it), never published and unowned.
func TestNoInterleavingLeavesAPublishedNameUnowned(t *testing.T) {
	for step := 1; step <= 2; step++ { // names, index
		st, _ := local.New(t.TempDir())
		fs := &faultstore.Store{Store: st, N: step}
		r := New(Options{Store: fs, Prefix: "artifact/m"})
		_ = r.Update(context.Background(), "p", func(old []byte) ([]byte, error) { return []byte("1.0\n"), nil })
		fresh := New(Options{Store: st, Prefix: "artifact/m"})
		owns, _ := fresh.Owns(context.Background(), "p")
		x, _ := fresh.Index(context.Background(), "p")
		if x.Body != nil && !owns {
			t.Errorf("step %d: the index is written and the name is not owned", step)
		}
	}
}

// A change that refuses a first publish claims nothing.
func TestRefusedFirstPublishClaimsNothing(t *testing.T) {
	st, _ := local.New(t.TempDir())
	r := New(Options{Store: st, Prefix: "artifact/m"})
	_ = r.Update(context.Background(), "p", func([]byte) ([]byte, error) { return nil, errors.New("bad upload") })
	if owns, _ := r.Owns(context.Background(), "p"); owns {
		t.Error("a refused publish claimed the name")
	}
}

type deadLock struct{}

func (deadLock) Lock(context.Context, string) (func(), error) {
	return nil, errors.New("dial tcp 127.0.0.1:6379: connection refused")
}

// With Redis down, the error says so (not "hosted storage").
func TestLockDownIsNamed(t *testing.T) {
	st, _ := local.New(t.TempDir())
	r := New(Options{Store: st, Prefix: "artifact/m", Lock: deadLock{}})
	err := r.Update(context.Background(), "p", func([]byte) ([]byte, error) { return []byte("x"), nil })
	if !errors.Is(err, ErrLockUnavailable) || !strings.Contains(err.Error(), "Redis") {
		t.Errorf("err = %v, want ErrLockUnavailable naming Redis", err)
	}
}
