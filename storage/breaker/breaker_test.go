package breaker_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/storage"
	"github.com/mirror-proxy/mirror-proxy/storage/breaker"
	"github.com/mirror-proxy/mirror-proxy/storage/local"
	"github.com/mirror-proxy/mirror-proxy/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		s, err := local.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return breaker.New(s, breaker.Options{})
	})
}

// hanging is a store whose calls block until their context ends while
// hang is set, like an S3 server that was SIGSTOPped.
type hanging struct {
	storage.Store
	hang  atomic.Bool
	calls atomic.Int64
}

func (h *hanging) wait(ctx context.Context) error {
	h.calls.Add(1)
	if h.hang.Load() {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

func (h *hanging) Stat(ctx context.Context, key string) (storage.Info, error) {
	if err := h.wait(ctx); err != nil {
		return storage.Info{}, err
	}
	return h.Store.Stat(ctx, key)
}

func (h *hanging) Get(ctx context.Context, key string, r storage.Range) (io.ReadCloser, storage.Info, error) {
	if err := h.wait(ctx); err != nil {
		return nil, storage.Info{}, err
	}
	return h.Store.Get(ctx, key, r)
}

// A hanging store costs a call Timeout; after Failures of them the
// circuit opens and calls fail at once, until a probe finds it back.
func TestDeadlinesAndCircuit(t *testing.T) {
	l, _ := local.New(t.TempDir())
	h := &hanging{Store: l}
	var opened atomic.Int64
	s := breaker.New(h, breaker.Options{Timeout: 100 * time.Millisecond, Failures: 2, OpenFor: 300 * time.Millisecond,
		OnChange: func(open bool) {
			if open {
				opened.Add(1)
			}
		}})
	ctx := context.Background()
	if err := s.Put(ctx, "k", bytes.NewReader([]byte("v")), storage.PutOptions{Size: 1}); err != nil {
		t.Fatal(err)
	}
	h.hang.Store(true)
	for i := 0; i < 2; i++ {
		start := time.Now()
		_, err := s.Stat(ctx, "k")
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
			t.Fatalf("call %d on a hanging store: %v after %v", i, err, time.Since(start))
		}
	}
	if !s.Open() || opened.Load() != 1 {
		t.Fatalf("the circuit did not open after 2 failures")
	}
	calls := h.calls.Load()
	start := time.Now()
	if _, _, err := s.Get(ctx, "k", storage.Whole); !errors.Is(err, breaker.ErrOpen) || time.Since(start) > 10*time.Millisecond {
		t.Fatalf("open circuit: %v after %v", err, time.Since(start))
	}
	if h.calls.Load() != calls {
		t.Fatalf("an open circuit still called the store")
	}
	h.hang.Store(false)
	time.Sleep(350 * time.Millisecond)
	if _, err := s.Stat(ctx, "k"); err != nil || s.Open() {
		t.Fatalf("after the store came back: %v, open=%v", err, s.Open())
	}
}

// stallingBody delivers some bytes, then nothing until closed.
type stallingBody struct{ closed chan struct{} }

func (b *stallingBody) Read(p []byte) (int, error) {
	select {
	case <-b.closed:
		return 0, errors.New("closed")
	default:
	}
	<-b.closed
	return 0, errors.New("closed")
}
func (b *stallingBody) Close() error {
	select {
	case <-b.closed:
	default:
		close(b.closed)
	}
	return nil
}

type stallingStore struct{ storage.Store }

func (s stallingStore) Get(ctx context.Context, key string, r storage.Range) (io.ReadCloser, storage.Info, error) {
	b := &stallingBody{closed: make(chan struct{})}
	context.AfterFunc(ctx, func() { b.Close() })
	return b, storage.Info{Key: key, Size: 10}, nil
}

// A body that stops delivering is cut after IdleTimeout.
func TestStalledBodyIsCut(t *testing.T) {
	l, _ := local.New(t.TempDir())
	s := breaker.New(stallingStore{l}, breaker.Options{Timeout: time.Second, IdleTimeout: 100 * time.Millisecond})
	rc, _, err := s.Get(context.Background(), "k", storage.Whole)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	start := time.Now()
	_, err = io.ReadAll(rc)
	if err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("stalled body: %v after %v", err, time.Since(start))
	}
}

// A reader that pauses between reads (a slow client downstream) is not
// cut: only the time the store takes counts.
func TestSlowConsumerIsNotCut(t *testing.T) {
	l, _ := local.New(t.TempDir())
	if err := l.Put(context.Background(), "k", bytes.NewReader(make([]byte, 3<<10)), storage.PutOptions{Size: 3 << 10}); err != nil {
		t.Fatal(err)
	}
	s := breaker.New(l, breaker.Options{Timeout: time.Second, IdleTimeout: 50 * time.Millisecond})
	rc, _, err := s.Get(context.Background(), "k", storage.Whole)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	buf := make([]byte, 1<<10)
	total := 0
	for {
		time.Sleep(150 * time.Millisecond) // longer than IdleTimeout, between reads
		n, err := rc.Read(buf)
		total += n
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("a slow consumer was cut after %d bytes: %v", total, err)
		}
	}
	if total != 3<<10 {
		t.Fatalf("read %d bytes", total)
	}
}

type failingBody struct{}

func (failingBody) Read([]byte) (int, error) { return 0, errors.New("checksum mismatch") }

// Puts whose bodies fail (downloads that broke or failed verification)
// are not store failures: they never open the circuit.
func TestFailingBodiesDoNotOpenTheCircuit(t *testing.T) {
	l, _ := local.New(t.TempDir())
	s := breaker.New(l, breaker.Options{Failures: 2})
	for i := 0; i < 5; i++ {
		if err := s.Put(context.Background(), "k", failingBody{}, storage.PutOptions{Size: -1}); err == nil {
			t.Fatal("a failing body was committed")
		}
	}
	if s.Open() {
		t.Fatal("failing bodies opened the circuit")
	}
	if _, err := s.Stat(context.Background(), "k"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("after failed Puts: %v", err)
	}
}
