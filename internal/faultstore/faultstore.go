// Package faultstore is a storage decorator for tests that fails one
// write: the n-th Put under a prefix, either before it lands or after (a
// timeout whose request went through), so that a multi-step write can be
// interrupted at each of its steps.
package faultstore

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"

	"github.com/mirror-proxy/mirror-proxy/storage"
)

// ErrInjected is the failure the chosen write reports.
var ErrInjected = errors.New("injected storage fault")

// Store fails its N-th Put (1-based) of a key under Prefix ("" : any key),
// once; with Landed the write is stored first. N < 1 fails nothing (the
// store then only counts).
type Store struct {
	storage.Store
	N      int
	Landed bool
	Prefix string

	mu   sync.Mutex
	puts int
}

// Puts is how many writes under Prefix were asked for.
func (s *Store) Puts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.puts
}

func (s *Store) Put(ctx context.Context, key string, r io.Reader, o storage.PutOptions) error {
	if !strings.HasPrefix(key, s.Prefix) {
		return s.Store.Put(ctx, key, r, o)
	}
	s.mu.Lock()
	s.puts++
	fail := s.puts == s.N
	s.mu.Unlock()
	if !fail {
		return s.Store.Put(ctx, key, r, o)
	}
	if s.Landed {
		if err := s.Store.Put(ctx, key, r, o); err != nil {
			return err
		}
	}
	return ErrInjected
}
