package fetch

import (
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"golang.org/x/sync/semaphore"
)

// Decoded metadata is bounded per document (MAX_METADATA_BYTES) and summed
// over every document being read at once (METADATA_MEMORY_BYTES): a
// reader reserves the memory its buffer takes as it grows, and waits for
// others to finish when the sum would pass the bound. Six gzip bombs at
// once therefore cost the bound, not six times the per-document limit.

// budgetWait is how long a read waits for memory before it gives up (a
// 503 that says so).
const budgetWait = 10 * time.Second

// errBusy: the metadata being decoded at once already holds the memory
// bound; nothing was read past it.
var errBusy = errors.New("the proxy is decoding as much metadata as METADATA_MEMORY_BYTES allows; retry shortly")

// budget bounds the memory of decoded metadata across requests.
type budget struct {
	sem *semaphore.Weighted
}

func newBudget(total, perDoc int64) *budget {
	// A document may always be read whole: its buffer's growth takes at
	// most about twice the per-document limit.
	total = max(total, 2*perDoc+(1<<20))
	return &budget{sem: semaphore.NewWeighted(total)}
}

// ReadBody reads a metadata response, decompressing gzip as it reads and
// stopping as soon as the document passes MAX_METADATA_BYTES (a gzip bomb
// costs at most that), within the memory bound shared by every read at
// once; release gives the memory back once the bytes (and what was
// derived from them) are no longer needed.
func (c *Core) ReadBody(ctx context.Context, resp *http.Response) (body []byte, release func(), err error) {
	return c.budget.read(ctx, resp, c.maxMeta)
}

func (b *budget) read(ctx context.Context, resp *http.Response, max int64) ([]byte, func(), error) {
	var held int64
	release := func() {
		if held > 0 {
			b.sem.Release(held)
			held = 0
		}
	}
	reserve := func(n int64) error {
		wctx, cancel := context.WithTimeout(ctx, budgetWait)
		defer cancel()
		if err := b.sem.Acquire(wctx, n); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return errBusy
		}
		held += n
		return nil
	}
	var r io.Reader = resp.Body
	gz := strings.EqualFold(resp.Header.Get("Content-Encoding"), "gzip")
	if gz {
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			return nil, release, err
		}
		r = zr
	}
	if resp.ContentLength > max && resp.Header.Get("Content-Encoding") == "" {
		return nil, release, errTooLarge
	}
	size := int64(64 << 10)
	if resp.ContentLength > 0 && !gz {
		size = min(resp.ContentLength+1, max+1)
	}
	if err := reserve(size); err != nil {
		return nil, release, err
	}
	buf := make([]byte, 0, size)
	for {
		if int64(len(buf)) > max {
			release()
			return nil, release, errTooLarge
		}
		if len(buf) == cap(buf) {
			next := min(2*int64(cap(buf)), max+1)
			if next <= int64(cap(buf)) {
				next = int64(cap(buf)) + 1
			}
			// The old buffer stays counted until the read ends: the
			// collector frees it later, not now.
			if err := reserve(next); err != nil {
				release()
				return nil, release, err
			}
			nb := make([]byte, len(buf), next)
			copy(nb, buf)
			buf = nb
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			release()
			return nil, release, err
		}
	}
	if int64(len(buf)) > max {
		release()
		return nil, release, errTooLarge
	}
	return buf, release, nil
}
