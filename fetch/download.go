package fetch

// The download of one immutable file (a flight): claimed across replicas,
// streamed from the upstream into a spool that its clients and the
// storage write read as it grows, verified on the complete bytes, and only
// then committed. ServeFile (files.go) starts or joins it.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/mirror-proxy/mirror-proxy/coord"
	"github.com/mirror-proxy/mirror-proxy/httpx"
	"github.com/mirror-proxy/mirror-proxy/storage"
)

// errLeaseTimeout: another replica is downloading the file and did not
// finish within the wait.
var errLeaseTimeout = &httpx.UpstreamError{Status: http.StatusServiceUnavailable, RetryAfter: "5",
	Msg: "another replica is still downloading this file; retry shortly"}

// claim decides, across replicas, who downloads key: it returns a lease
// (this process downloads; nil without Redis or when Redis fails, which
// degrades to in-process single-flight), or landed=true when another
// replica stored the object meanwhile, or errLeaseTimeout.
func (c *Core) claim(ctx context.Context, key string) (lease *coord.Lease, landed bool, err error) {
	if c.coord == nil {
		return nil, false, nil
	}
	deadline := time.Now().Add(c.leaseWait)
	waited := false
	for {
		l, ok, err := c.coord.TryLease(ctx, key, c.leaseTTL)
		if err != nil {
			return nil, false, nil // Redis is down: carry on alone
		}
		if ok {
			// Storage is re-checked under the lease: the last holder may
			// have finished just before we got it.
			if _, err := c.store.Stat(ctx, key); err == nil {
				l.Release()
				return nil, true, nil
			}
			return l, false, nil
		}
		if !waited {
			waited = true
			c.metrics.leaseWaits.Inc()
		}
		if _, err := c.store.Stat(ctx, key); err == nil {
			return nil, true, nil
		}
		if time.Now().After(deadline) {
			c.metrics.leaseTimeouts.Inc()
			return nil, false, errLeaseTimeout
		}
		select {
		case <-time.After(250 * time.Millisecond):
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
}

// download fetches f's file from the upstream (or from storage, when
// another replica stored it meanwhile) while the flight's clients read the
// spool, verifies it and commits it: claim, open, copy and verify, commit.
func (c *Core) download(f *flight, src FileSource) {
	defer c.endFlight(f)
	ctx, cancel := context.WithTimeout(c.bg, c.downloadTimeout)
	defer cancel()
	c.stopWhenAbandoned(f, cancel)
	lease, landed, err := c.claim(ctx, f.key)
	if err != nil {
		c.finishFlight(f, err)
		return
	}
	if lease != nil {
		defer lease.Release() // after the storage write below
	}
	var body io.ReadCloser
	var size int64
	if landed {
		body, size, err = c.openStored(ctx, f.key)
	} else {
		body, size, err = c.openUpstream(ctx, f.key, &src)
	}
	if err != nil {
		c.finishFlight(f, err)
		return
	}
	defer body.Close()
	spool, releaseRoom, err := c.createSpool(f, size)
	if err != nil {
		c.finishFlight(f, err)
		return
	}
	defer releaseRoom()
	f.start(spool, size)
	putDone := c.storeSpool(ctx, f, src, size, landed)
	sum, err := c.copyAndVerify(cancel, f, src, body, size, lease, landed)
	c.finishFlight(f, err)
	c.commit(f, src, sum, err, <-putDone)
}

// stopWhenAbandoned makes the flight cancel its download when every
// client has left, unless it is past FinishShare of a known size.
func (c *Core) stopWhenAbandoned(f *flight, cancel func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.abandon = func() {
		// The only reference left is the download's own.
		f.mu.Lock()
		keep := f.size > 0 && float64(f.written) >= c.finishShare*float64(f.size)
		f.mu.Unlock()
		if !keep {
			c.log.Info("every client left a download; stopped", "key", f.key)
			cancel()
		}
	}
}

// finishFlight ends the flight's download with err (nil: complete and
// verified): its clients get their last byte or the error.
func (c *Core) finishFlight(f *flight, err error) {
	if err != nil {
		// A failed download is not joined by requests that come after
		// it: they try again (the storage write may still be unwinding).
		c.forgetFlight(f)
	}
	if verifyErr(err) {
		c.rememberFailure(f.key, err)
	}
	f.mu.Lock()
	if err == nil {
		f.size = f.written
	}
	f.finished, f.err = true, err
	f.cond.Broadcast()
	f.mu.Unlock()
	f.markReady()
	close(f.done)
}

// openStored reads the file another replica stored while this one waited.
func (c *Core) openStored(ctx context.Context, key string) (io.ReadCloser, int64, error) {
	rc, info, err := c.store.Get(ctx, key, storage.Whole)
	if err != nil {
		return nil, 0, fmt.Errorf("read %s that another replica stored: %w", key, err)
	}
	return rc, info.Size, nil
}

// openUpstream requests the file from src.URL, and from src.Moved when
// the first answers 404 or 410 (src then names where it came from). The
// size is the announced one (-1: unknown), checked against the metadata's
// and MAX_FILE_BYTES.
func (c *Core) openUpstream(ctx context.Context, key string, src *FileSource) (io.ReadCloser, int64, error) {
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, src.URL, nil)
		if err != nil {
			return nil, 0, &httpx.UpstreamError{Status: http.StatusBadGateway, Msg: fmt.Sprintf("bad file URL %q in metadata: %v", httpx.SafeURL(src.URL), err)}
		}
		setAgent(req, src.Agent)
		resp, err := src.Client.Do(req)
		if err != nil {
			c.metrics.fetched(key, "file", "error")
			return nil, 0, TransportError(src.URL, err)
		}
		switch {
		case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
			resp.Body.Close()
			c.metrics.fetched(key, "file", "not_found")
			if src.Moved != "" {
				src.URL, src.Moved = src.Moved, ""
				continue
			}
			return nil, 0, &upstream404{url: httpx.SafeURL(src.URL)}
		case resp.StatusCode != http.StatusOK:
			resp.Body.Close()
			c.metrics.fetched(key, "file", "error")
			return nil, 0, StatusError(src.URL, resp)
		}
		c.metrics.fetched(key, "file", "ok")
		size := resp.ContentLength
		switch {
		case src.Size > 0 && size >= 0 && size != src.Size:
			resp.Body.Close()
			return nil, 0, &httpx.UpstreamError{Status: http.StatusBadGateway, Verify: true, Msg: fmt.Sprintf("%s is %d bytes, the metadata says %d; nothing was stored", httpx.SafeURL(src.URL), size, src.Size)}
		case size > c.maxFile || src.Size > c.maxFile:
			resp.Body.Close()
			return nil, 0, &httpx.UpstreamError{Status: http.StatusBadGateway, Msg: fmt.Sprintf("%s is larger than MAX_FILE_BYTES (%d)", httpx.SafeURL(src.URL), c.maxFile)}
		case size < 0 && src.Size > 0:
			size = src.Size
		}
		return resp.Body, size, nil
	}
}

// storeSpool writes the spool to storage as it grows: storage commits
// only on io.EOF, which its reader gets only after verification. A file
// another replica stored (landed) is not written again.
func (c *Core) storeSpool(ctx context.Context, f *flight, src FileSource, size int64, landed bool) <-chan error {
	putDone := make(chan error, 1)
	if landed {
		putDone <- storage.ErrExists
		return putDone
	}
	// The metadata's strongest digest is recorded with the file: reads
	// are verified against it (verify_read.go).
	opts := storage.PutOptions{Size: size, CreateOnly: true, ContentType: httpx.ContentType(f.key), Digest: strongest(src.Digests)}
	go func() {
		r, stop := f.reader(ctx, false)
		defer stop()
		putDone <- c.store.Put(ctx, f.key, r, opts)
	}()
	return putDone
}

// copyAndVerify copies body into the flight's spool, then checks the
// size, every digest and the ecosystem's Check. It returns the sha256 of
// what was copied, computed for every download so that what was stored
// can be audited even where the metadata gave no digest.
func (c *Core) copyAndVerify(cancel func(), f *flight, src FileSource, body io.Reader, size int64, lease *coord.Lease, landed bool) ([]byte, error) {
	if lease != nil {
		// From now on the lease is renewed only while bytes arrive.
		lease.RequireProgress()
	}
	// limit: no download grows past its announced size or MAX_FILE_BYTES.
	limit := c.maxFile
	if size >= 0 {
		limit = size
	}
	hashes := make([]hash.Hash, 0, len(src.Digests)+1)
	for _, d := range src.Digests {
		hashes = append(hashes, d.hash())
	}
	stored256 := sha256.New()
	hashes = append(hashes, stored256)
	err := c.fill(cancel, f, src.URL, body, limit, hashes, lease)
	if !landed {
		c.metrics.upstreamBytes.with(c.metrics.mirrorLabel(f.key)).Add(float64(f.written))
	}
	if err == nil {
		err = verifyFlight(f, src, size, hashes, landed)
	}
	if err != nil {
		c.log.Warn("download failed; nothing stored", "key", f.key, "url", httpx.SafeURL(src.URL), "err", err)
	}
	return stored256.Sum(nil), err
}

// fill copies body into the flight's spool (waking its readers), feeding
// hashes, until EOF or more than limit bytes. A body that delivers nothing
// for UpstreamIdleTimeout is given up (cancel): a stalled upstream must
// not hold the file (and, through the lease, every replica) for the whole
// download timeout.
func (c *Core) fill(cancel func(), f *flight, url string, body io.Reader, limit int64, hashes []hash.Hash, lease *coord.Lease) error {
	var stalled atomic.Bool
	idle := time.AfterFunc(c.idleTimeout, func() { stalled.Store(true); cancel() })
	defer idle.Stop() // the storage write after may take longer than a read
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			idle.Reset(c.idleTimeout)
			if lease != nil {
				lease.Progress()
			}
			if _, werr := f.file.Write(buf[:n]); werr != nil { // readers' ReadAt is safe alongside
				return fmt.Errorf("write spool file: %w", werr)
			}
			for _, h := range hashes {
				h.Write(buf[:n])
			}
			f.mu.Lock()
			f.written += int64(n)
			f.cond.Broadcast()
			f.mu.Unlock()
		}
		if f.written > limit {
			return &httpx.UpstreamError{Status: http.StatusBadGateway, Msg: fmt.Sprintf("%s sent more than %d bytes (its announced size or MAX_FILE_BYTES); nothing was stored", httpx.SafeURL(url), limit)}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			if stalled.Load() {
				rerr = fmt.Errorf("no data for %v (UPSTREAM_IDLE_TIMEOUT)", c.idleTimeout)
			}
			return TransportError(url, rerr)
		}
	}
}

// verifyFlight checks a complete copy: its size, each of src's digests
// (hashes[i] fed the bytes for src.Digests[i]) and, for an upstream
// download, src.Check.
func verifyFlight(f *flight, src FileSource, size int64, hashes []hash.Hash, landed bool) error {
	url := httpx.SafeURL(src.URL)
	if size >= 0 && f.written != size {
		return &httpx.UpstreamError{Status: http.StatusBadGateway, Msg: fmt.Sprintf("%s: got %d of %d bytes", url, f.written, size)}
	}
	for i, d := range src.Digests {
		if got := hashes[i].Sum(nil); !d.matches(got) {
			return &httpx.UpstreamError{Status: http.StatusBadGateway, Verify: true, Msg: fmt.Sprintf("%v: %s has %s %s, the metadata says %s; nothing was stored", errChecksum, url, d.Alg, hex.EncodeToString(got), d)}
		}
	}
	if src.Check != nil && !landed {
		if err := src.Check(f.file, f.written); err != nil {
			return &httpx.UpstreamError{Status: http.StatusBadGateway, Verify: true, Msg: fmt.Sprintf("%s failed verification (%v); nothing was stored", url, err)}
		}
	}
	return nil
}

// commit records a finished download: the storage write (perr) has
// committed or refused the file (a failed download, dlErr, never
// commits); a stored file is logged with its sha256 and linked into the
// disk cache.
func (c *Core) commit(f *flight, src FileSource, sum []byte, dlErr, perr error) {
	switch {
	case dlErr != nil:
	case perr == nil || errors.Is(perr, storage.ErrExists):
		if perr == nil {
			verified := "digest from the metadata"
			switch {
			case len(src.Digests) == 0 && src.Check != nil:
				verified = "archive structure only (no digest in the metadata)"
			case len(src.Digests) == 0:
				verified = "size only (no digest in the metadata)"
			}
			c.log.Info("file stored", "key", f.key, "bytes", f.written, "sha256", hex.EncodeToString(sum), "verified", verified)
		}
		if c.distDisk != nil && f.path != "" {
			if err := c.distDisk.PutFile(f.key, f.path); err != nil {
				c.metrics.cacheWriteErrors.Inc()
				c.log.Warn("disk cache write failed", "key", f.key, "err", err)
			}
		}
	default:
		c.metrics.notStored.with("file").Add(1)
		c.log.Warn("storage write failed; the file was served but not stored", "key", f.key, "err", perr)
	}
}

// verifyErr reports a download that failed verification (digest, size,
// archive structure): the same bytes would fail again.
func verifyErr(err error) bool {
	var ue *httpx.UpstreamError
	return errors.As(err, &ue) && ue.Verify
}

// rememberFailure records a verification failure of key for
// VerifyFailureTTL, in this process and (through Redis) for every
// replica, so that the file is not fetched again and again meanwhile.
func (c *Core) rememberFailure(key string, err error) {
	if c.verifyFailureTTL <= 0 {
		return
	}
	msg := err.Error()
	c.badFiles.Store(key, badFile{msg: msg, until: c.now().Add(c.verifyFailureTTL)})
	if c.coord != nil {
		c.coord.SetFailed(c.bg, key, msg, c.verifyFailureTTL)
	}
}

// recentFailure returns the recorded verification failure of key, if any
// is recent.
func (c *Core) recentFailure(ctx context.Context, key string) error {
	if v, ok := c.badFiles.Load(key); ok {
		b := v.(badFile)
		if c.now().Before(b.until) {
			return &httpx.UpstreamError{Status: http.StatusBadGateway, Msg: b.msg + " (recently; not fetched again yet)"}
		}
		c.badFiles.CompareAndDelete(key, v)
	}
	if c.coord != nil {
		if msg, ok := c.coord.Failed(ctx, key); ok {
			return &httpx.UpstreamError{Status: http.StatusBadGateway, Msg: msg + " (seen by another replica; not fetched again yet)"}
		}
	}
	return nil
}

type badFile struct {
	msg   string
	until time.Time
}

// createSpool creates the file a download is written to. With a disk
// cache it goes into the cache's directory (a verified download is then
// linked in, not copied) when that filesystem has room for it; otherwise,
// and for downloads of unknown size, into the system's temp directory,
// so that a full cache disk never fails a download.
func (c *Core) createSpool(f *flight, size int64) (*os.File, func(), error) {
	if c.distDisk != nil && size >= 0 && size <= c.distDisk.Max() {
		if free := freeBytes(c.spoolDir); free < 0 || free > size+(64<<20) {
			// Room is made in the cache for the file while it is written.
			release, _ := c.distDisk.Reserve(size)
			if spool, err := os.CreateTemp(c.spoolDir, "spool-*"); err == nil {
				// Kept by name, to be linked into the disk cache once
				// verified; a leftover of a killed process is cleared when
				// the cache opens.
				f.path = spool.Name()
				return spool, release, nil
			}
			release()
		}
	}
	spool, err := os.CreateTemp(os.TempDir(), "mirror-spool-*")
	if err != nil {
		return nil, nil, fmt.Errorf("create spool file in %s: %w", os.TempDir(), err)
	}
	// Unlinked at once: the open file lives as long as its readers, and a
	// killed process leaves nothing behind.
	os.Remove(spool.Name())
	return spool, func() {}, nil
}
