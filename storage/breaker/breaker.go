// Package breaker wraps a storage.Store so that a slow or dead store costs
// requests a bounded wait instead of their whole timeout: every call gets
// a deadline on its first byte, a body read that stops making progress is
// cut, and after a few consecutive failures the circuit opens, so that
// the next calls fail at once (and the proxy falls back to its caches and
// the upstream) until a probe call succeeds again.
package breaker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mirror-proxy/mirror-proxy/storage"
)

// ErrOpen: the circuit is open; the store was not asked.
var ErrOpen = errors.New("storage unavailable (circuit open after repeated failures)")

// Options tune the wrapper; zero values take the defaults.
type Options struct {
	// Timeout bounds the time to the first byte of Get and Stat, and the
	// whole of Delete and of a Put of a body already in memory (up to 16
	// MiB, plus a second per MiB). Default 5 s.
	Timeout time.Duration
	// IdleTimeout cuts a Get body that delivers nothing for this long.
	// Default: Timeout.
	IdleTimeout time.Duration
	// Failures is the number of consecutive failures that opens the
	// circuit. Default 3.
	Failures int
	// OpenFor is how long the circuit stays open before one call is let
	// through to probe the store. Default 5 s.
	OpenFor time.Duration
	// OnChange is called when the circuit opens (true) or closes (false).
	OnChange func(open bool)
}

// Store is a storage.Store with deadlines and a circuit breaker.
type Store struct {
	next storage.Store
	o    Options
	now  func() time.Time

	mu        sync.Mutex
	failures  int
	openUntil time.Time
	probing   bool
	open      atomic.Bool
}

var _ storage.Store = (*Store)(nil)

// New wraps next.
func New(next storage.Store, o Options) *Store {
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = o.Timeout
	}
	if o.Failures <= 0 {
		o.Failures = 3
	}
	if o.OpenFor <= 0 {
		o.OpenFor = 5 * time.Second
	}
	if o.OnChange == nil {
		o.OnChange = func(bool) {}
	}
	return &Store{next: next, o: o, now: time.Now}
}

// Open reports whether the circuit is open (the store is considered down).
func (s *Store) Open() bool { return s.open.Load() }

// Unwrap returns the wrapped store.
func (s *Store) Unwrap() storage.Store { return s.next }

// admit decides whether a call may go to the store; probe is set for the
// one call let through an open circuit.
func (s *Store) admit() (probe bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failures < s.o.Failures {
		return false, nil
	}
	if s.now().Before(s.openUntil) || s.probing {
		return false, ErrOpen
	}
	s.probing = true
	return true, nil
}

// done records the outcome of a call. Answers that are part of the
// protocol (not found, exists, bad range) and calls the caller itself
// cancelled say nothing about the store's health.
func (s *Store) done(probe bool, err error, callerCtx context.Context) {
	failed := err != nil && !errors.Is(err, storage.ErrNotFound) && !errors.Is(err, storage.ErrExists) &&
		!errors.Is(err, storage.ErrInvalidRange) && !errors.Is(err, storage.ErrPreconditionFailed) && callerCtx.Err() == nil
	s.mu.Lock()
	if probe {
		s.probing = false
	}
	var changed, open bool
	if failed {
		s.failures++
		if s.failures >= s.o.Failures {
			s.openUntil = s.now().Add(s.o.OpenFor)
			changed, open = !s.open.Load(), true
			s.open.Store(true)
		}
	} else if s.failures > 0 && (err == nil || callerCtx.Err() == nil) {
		s.failures = 0
		changed, open = s.open.Load(), false
		s.open.Store(false)
	}
	s.mu.Unlock()
	if changed {
		s.o.OnChange(open)
	}
}

// deadline returns a context cancelled after d unless stop is called
// first; stop reports whether it came in time.
func deadline(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc, func() bool) {
	cctx, cancel := context.WithCancelCause(ctx)
	t := time.AfterFunc(d, func() { cancel(fmt.Errorf("storage did not answer within %v: %w", d, context.DeadlineExceeded)) })
	return cctx, func() { t.Stop(); cancel(nil) }, t.Stop
}

func timedOut(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); err != nil && cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return err
}

func (s *Store) Stat(ctx context.Context, key string) (storage.Info, error) {
	probe, err := s.admit()
	if err != nil {
		return storage.Info{}, err
	}
	cctx, cancel, _ := deadline(ctx, s.o.Timeout)
	defer cancel()
	info, err := s.next.Stat(cctx, key)
	err = timedOut(cctx, err)
	s.done(probe, err, ctx)
	return info, err
}

func (s *Store) Get(ctx context.Context, key string, rng storage.Range) (io.ReadCloser, storage.Info, error) {
	probe, err := s.admit()
	if err != nil {
		return nil, storage.Info{}, err
	}
	cctx, cancel, stop := deadline(ctx, s.o.Timeout)
	rc, info, err := s.next.Get(cctx, key, rng)
	inTime := stop()
	if err != nil || !inTime {
		if rc != nil {
			rc.Close()
		}
		cancel()
		if err == nil {
			err = context.Cause(cctx)
		}
		err = timedOut(cctx, err)
		s.done(probe, err, ctx)
		return nil, storage.Info{}, err
	}
	s.done(probe, nil, ctx)
	b := &body{s: s, rc: rc, ctx: cctx, cancel: cancel, caller: ctx}
	b.idle = time.AfterFunc(s.o.IdleTimeout, func() {
		b.stalled.Store(true)
		cancel()
	})
	b.idle.Stop() // armed only while a Read waits on the store
	return b, info, nil
}

// body cuts a read from the store that makes no progress for IdleTimeout.
type body struct {
	s       *Store
	rc      io.ReadCloser
	ctx     context.Context
	caller  context.Context
	cancel  context.CancelFunc
	idle    *time.Timer
	stalled atomic.Bool
	once    sync.Once
}

// Read waits at most IdleTimeout for the store. Only the time inside the
// store's Read counts: a slow client that keeps the caller from reading
// for a while (a full TCP window) must not cut its own download.
func (b *body) Read(p []byte) (int, error) {
	b.idle.Reset(b.s.o.IdleTimeout)
	n, err := b.rc.Read(p)
	b.idle.Stop()
	if err != nil && err != io.EOF {
		if b.stalled.Load() {
			err = fmt.Errorf("storage read stalled for %v: %w", b.s.o.IdleTimeout, context.DeadlineExceeded)
		}
		b.once.Do(func() { b.s.done(false, err, b.caller) })
	}
	return n, err
}

func (b *body) Close() error {
	b.idle.Stop()
	err := b.rc.Close()
	b.cancel()
	return err
}

func (s *Store) Put(ctx context.Context, key string, r io.Reader, opts storage.PutOptions) error {
	probe, err := s.admit()
	if err != nil {
		return err
	}
	cctx := ctx
	// Only a body already in memory gets a deadline: a body streamed from
	// an upstream download arrives at the upstream's pace.
	if m, inMemory := r.(interface{ Len() int }); inMemory && m.Len() <= 16<<20 {
		c, cancel, _ := deadline(ctx, s.o.Timeout+time.Duration(m.Len()>>20)*time.Second)
		defer cancel()
		cctx = c
	}
	body := &trackedReader{r: r}
	err = timedOut(cctx, s.next.Put(cctx, key, body, opts))
	if err != nil && body.err != nil {
		// The body failed (a download that broke or failed verification):
		// that says nothing about the store.
		s.done(probe, nil, ctx)
		return err
	}
	s.done(probe, err, ctx)
	return err
}

// trackedReader remembers an error of the body a Put reads.
type trackedReader struct {
	r   io.Reader
	err error
}

func (t *trackedReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF {
		t.err = err
	}
	return n, err
}

func (s *Store) Delete(ctx context.Context, key string) error {
	probe, err := s.admit()
	if err != nil {
		return err
	}
	cctx, cancel, _ := deadline(ctx, s.o.Timeout)
	defer cancel()
	err = timedOut(cctx, s.next.Delete(cctx, key))
	s.done(probe, err, ctx)
	return err
}

// List is for maintenance: no deadline, but it respects an open circuit.
func (s *Store) List(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	probe, err := s.admit()
	if err != nil {
		return err
	}
	err = s.next.List(ctx, prefix, fn)
	s.done(probe, err, ctx)
	return err
}
