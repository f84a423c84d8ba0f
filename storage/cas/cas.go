// Package cas updates an object that several writers (replicas) change,
// such as the per-package index of hosted packages: read it, change it,
// write it back only over the version that was read (If-Match, or
// create-only for a new object), and start again when another writer got
// there first. No update is ever lost, and none is written blindly.
package cas

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/mirror-proxy/mirror-proxy/storage"
)

// Locker serialises writers of one object across processes, for stores
// whose If-Match is not atomic against a racing write (versitygw v1.8.0):
// a Redis lease, typically. Lock blocks until the lock is held or ctx
// ends.
type Locker interface {
	Lock(ctx context.Context, name string) (unlock func(), err error)
}

// ErrGaveUp: the object kept changing under the update.
var ErrGaveUp = errors.New("too many concurrent updates; try again")

// ErrLock: the lock could not be taken (Redis unreachable); nothing was
// written.
var ErrLock = errors.New("lock unavailable")

// maxAttempts bounds the retries of one update.
const maxAttempts = 50

// Update applies change to the object at key (nil when it does not exist
// yet) and writes the result back conditionally, retrying from a fresh
// read when another writer changed it meanwhile. change may be called
// several times and must not keep side effects of an earlier call; an
// error from it ends the update with nothing written, and so does a
// result equal to old (an update that changes nothing succeeds). lock, when not nil,
// is held around each read-change-write.
func Update(ctx context.Context, s storage.Store, key string, lock Locker, change func(old []byte) ([]byte, error)) error {
	for attempt := 0; attempt < maxAttempts; attempt++ {
		done, err := try(ctx, s, key, lock, change)
		if done || err != nil {
			return err
		}
		// Someone else wrote first: back off a little, at random, so that
		// racing writers spread out.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(rand.IntN(10*(attempt+1))) * time.Millisecond):
		}
	}
	return fmt.Errorf("update %s: %w", key, ErrGaveUp)
}

// try makes one attempt; done is false when the write lost a race.
func try(ctx context.Context, s storage.Store, key string, lock Locker, change func([]byte) ([]byte, error)) (done bool, err error) {
	if lock != nil {
		unlock, err := lock.Lock(ctx, "cas:"+key)
		if err != nil {
			return false, fmt.Errorf("update %s: %w: %w", key, ErrLock, err)
		}
		defer unlock()
	}
	var old []byte
	etag := ""
	rc, info, err := s.Get(ctx, key, storage.Whole)
	switch {
	case err == nil:
		old, err = io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return false, fmt.Errorf("update %s: read: %w", key, err)
		}
		etag = info.ETag
	case errors.Is(err, storage.ErrNotFound):
	default:
		return false, fmt.Errorf("update %s: read: %w", key, err)
	}
	next, err := change(old)
	if err != nil {
		return false, err
	}
	if etag != "" && bytes.Equal(next, old) {
		return true, nil // nothing to change (an identical retry): nothing written
	}
	opts := storage.PutOptions{Size: int64(len(next)), IfMatch: etag, CreateOnly: etag == "", ContentType: "application/json"}
	err = s.Put(ctx, key, bytes.NewReader(next), opts)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, storage.ErrPreconditionFailed) || errors.Is(err, storage.ErrExists):
		return false, nil
	}
	return false, fmt.Errorf("update %s: write: %w", key, err)
}
