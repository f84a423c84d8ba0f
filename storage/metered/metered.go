// Package metered wraps a storage.Store so that every call is counted by
// operation ("get", "stat", "put", "delete", "list") and result ("ok",
// "not_found", "exists", "precondition_failed", "error"), and timed,
// beside the other decorators (breaker, cas). The proxy counts into
// mirror_storage_operations_total and times into
// mirror_storage_operation_duration_seconds.
package metered

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/mirror-proxy/mirror-proxy/storage"
)

// Store is a storage.Store whose calls are counted.
type Store struct {
	storage.Store
	count func(op, result string, took time.Duration)
}

var _ storage.Store = Store{}

// New wraps s; count is called once per call, after it returns, with the
// time it took (a Get's until its body is open; a Put's includes reading
// its body).
func New(s storage.Store, count func(op, result string, took time.Duration)) Store {
	return Store{Store: s, count: count}
}

// Result names the outcome of a storage call, as counted.
func Result(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, storage.ErrNotFound):
		return "not_found"
	case errors.Is(err, storage.ErrExists):
		return "exists"
	case errors.Is(err, storage.ErrPreconditionFailed):
		return "precondition_failed"
	}
	return "error"
}

func (s Store) Get(ctx context.Context, key string, rng storage.Range) (io.ReadCloser, storage.Info, error) {
	start := time.Now()
	rc, info, err := s.Store.Get(ctx, key, rng)
	s.count("get", Result(err), time.Since(start))
	return rc, info, err
}

func (s Store) Stat(ctx context.Context, key string) (storage.Info, error) {
	start := time.Now()
	info, err := s.Store.Stat(ctx, key)
	s.count("stat", Result(err), time.Since(start))
	return info, err
}

func (s Store) Put(ctx context.Context, key string, r io.Reader, opts storage.PutOptions) error {
	start := time.Now()
	err := s.Store.Put(ctx, key, r, opts)
	s.count("put", Result(err), time.Since(start))
	return err
}

func (s Store) Delete(ctx context.Context, key string) error {
	start := time.Now()
	err := s.Store.Delete(ctx, key)
	s.count("delete", Result(err), time.Since(start))
	return err
}

func (s Store) List(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	start := time.Now()
	err := s.Store.List(ctx, prefix, fn)
	s.count("list", Result(err), time.Since(start))
	return err
}
