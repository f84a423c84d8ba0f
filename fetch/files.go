package fetch

// This file fetches, verifies and stores files (a cold npm tarball, a
// wheel, a dist, a NAR): ServeFile looks in the disk cache and storage,
// and on a miss resolves the file's upstream URL and digests through the
// ecosystem (npm's tarball handler in mirror/npm/serve.go), joins or
// starts one download per key (a Redis lease across replicas), streams it
// to every waiting client while spooling it, checks every digest (and the
// ecosystem's Check) on the complete bytes, and only then commits it to
// storage and the disk cache; a failure commits nothing and aborts the
// clients' transfers.

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
	"sync"
	"sync/atomic"
	"time"

	"github.com/mirror-proxy/mirror-proxy/coord"
	"github.com/mirror-proxy/mirror-proxy/httpx"
	"github.com/mirror-proxy/mirror-proxy/storage"
)

// FileSource is where an immutable file comes from, as the mirrored
// metadata says: the proxy downloads nothing else.
type FileSource struct {
	URL    string
	Client *http.Client
	// Digests the bytes must have (every one is checked); none when the
	// metadata gives none.
	Digests []Digest
	// Size is the file's size as the metadata gives it (PyPI's "size");
	// 0 when unknown. A download of another size is refused.
	Size int64
	// Check, when set, inspects the complete download (the spool, n
	// bytes) before anything is committed: the structural check of an
	// archive the metadata gives no digest for.
	Check func(r io.ReaderAt, n int64) error
	// Agent, when set, goes before the proxy's own User-Agent, for
	// upstreams that choose what to send by the client's (Posit Package
	// Manager picks R binaries by R version and platform). The storage key
	// must then include what it selects.
	Agent string
	// Moved, when set, is asked when URL answers 404 or 410: where the
	// file goes later in its life (CRAN moves a package's current source
	// to Archive/ when the next version is published, while indexes
	// cached by clients and by the proxy still name the old place). The
	// same digests and check apply.
	Moved string
}

// copyBufs are the 64 KiB buffers that downloads and responses copy
// through: memory per transfer stays small however many run at once.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// smallFile: files below this size are verified before the response
// starts; larger ones stream while they download.
const smallFile = 1 << 20

// errChecksum: the downloaded bytes do not match the metadata's hash.
var errChecksum = errors.New("checksum mismatch")

// flight is one upstream download of an immutable file, shared by every
// request for it that arrives while it runs. The body is spooled to a temp
// file; clients and the storage upload read the spool as it grows.
// Clients never receive the last byte before the download is complete and
// verified, so a failed or corrupt download is a truncated transfer for
// them, never a clean one; the storage upload gets an error instead of
// io.EOF, so nothing is committed.
type flight struct {
	key  string
	file *os.File // the spool, shared: the download writes, readers ReadAt
	path string   // its name while it has one (kept only for the disk cache)

	ready chan struct{} // closed once the upstream answered (size or err known)
	done  chan struct{} // closed once the download is finished (err final)

	mu       sync.Mutex
	cond     *sync.Cond
	size     int64 // Content-Length, -1 when the upstream did not send one
	written  int64
	finished bool
	err      error
	refs     int
	modTime  time.Time
	// abandon is called when every client has left a running download;
	// it stops the download unless it is far enough along to finish.
	abandon func()
}

func (f *flight) release() {
	f.mu.Lock()
	f.refs--
	last := f.refs == 0
	abandoned := f.refs == 1 && !f.finished && f.abandon != nil
	f.mu.Unlock()
	if abandoned {
		f.abandon()
	}
	if last && f.file != nil {
		f.file.Close()
		if f.path != "" {
			os.Remove(f.path)
		}
	}
}

// tail reads the spool from the start, waiting for bytes as they arrive.
type tail struct {
	f        *flight
	off      int64
	holdBack bool            // withhold the last byte until the download is verified
	ctx      context.Context // the reader's: a client that left stops waiting
}

func (t *tail) Read(p []byte) (int, error) {
	f := t.f
	f.mu.Lock()
	var avail int64
	for {
		if err := t.ctx.Err(); err != nil {
			f.mu.Unlock()
			return 0, err
		}
		if f.finished && f.err != nil {
			f.mu.Unlock()
			return 0, f.err
		}
		avail = f.written
		if t.holdBack && !f.finished && avail > 0 {
			avail-- // the last byte waits for verification
		}
		if t.off < avail {
			break
		}
		if f.finished {
			f.mu.Unlock()
			return 0, io.EOF
		}
		f.cond.Wait()
	}
	f.mu.Unlock()
	if n := avail - t.off; int64(len(p)) > n {
		p = p[:n]
	}
	n, err := f.file.ReadAt(p, t.off)
	t.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// reader reads the spool until the download ends or ctx does.
func (f *flight) reader(ctx context.Context, holdBack bool) (*tail, func()) {
	// Wake the reader when ctx ends: a stalled download must not hold a
	// client that has gone.
	stop := context.AfterFunc(ctx, func() {
		f.mu.Lock()
		f.cond.Broadcast()
		f.mu.Unlock()
	})
	return &tail{f: f, holdBack: holdBack, ctx: ctx}, func() { stop() }
}

// joinFlight returns the running download for key, or starts one.
func (c *Core) joinFlight(key string, src FileSource) *flight {
	c.flightsMu.Lock()
	defer c.flightsMu.Unlock()
	if f, ok := c.flights[key]; ok {
		f.mu.Lock()
		f.refs++
		f.mu.Unlock()
		c.metrics.flightWaits.Inc()
		return f
	}
	f := &flight{key: key, ready: make(chan struct{}), done: make(chan struct{}), size: -1, refs: 2}
	f.cond = sync.NewCond(&f.mu)
	c.flights[key] = f
	c.wg.Add(1)
	go c.download(f, src)
	return f
}

func (c *Core) endFlight(f *flight) {
	c.forgetFlight(f)
	f.release()
	c.wg.Done()
}

// forgetFlight makes later requests for the key start afresh (a newer
// flight for the same key is left alone).
func (c *Core) forgetFlight(f *flight) {
	c.flightsMu.Lock()
	if c.flights[f.key] == f {
		delete(c.flights, f.key)
	}
	c.flightsMu.Unlock()
}

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

func (c *Core) download(f *flight, src FileSource) {
	defer c.endFlight(f)
	ctx, cancel := context.WithTimeout(c.bg, c.downloadTimeout)
	defer cancel()
	f.mu.Lock()
	f.abandon = func() {
		// The only reference left is the download's own: every client
		// left. Finish only a download past FinishShare of a known size.
		f.mu.Lock()
		keep := f.size > 0 && float64(f.written) >= c.finishShare*float64(f.size)
		f.mu.Unlock()
		if !keep {
			c.log.Info("every client left a download; stopped", "key", f.key)
			cancel()
		}
	}
	f.mu.Unlock()
	readyOnce := sync.OnceFunc(func() { close(f.ready) })
	finish := func(err error) {
		if err != nil {
			// A failed download is not joined by requests that come after
			// it: they try again (the storage write may still be unwinding).
			c.forgetFlight(f)
		}
		if verifyErr(err) {
			c.rememberFailure(f.key, err)
		}
		f.mu.Lock()
		f.finished, f.err = true, err
		f.cond.Broadcast()
		f.mu.Unlock()
		readyOnce()
		close(f.done)
	}

	lease, landed, err := c.claim(ctx, f.key)
	if err != nil {
		finish(err)
		return
	}
	if lease != nil {
		defer lease.Release() // after the storage write below
	}
	var body io.ReadCloser
	var size int64
	if landed {
		// Another replica stored it while we waited: stream it from storage.
		rc, info, err := c.store.Get(ctx, f.key, storage.Whole)
		if err != nil {
			finish(fmt.Errorf("read %s that another replica stored: %w", f.key, err))
			return
		}
		body, size = rc, info.Size
	} else {
	retry:
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, src.URL, nil)
		if err != nil {
			finish(&httpx.UpstreamError{Status: http.StatusBadGateway, Msg: fmt.Sprintf("bad file URL %q in metadata: %v", httpx.SafeURL(src.URL), err)})
			return
		}
		setAgent(req, src.Agent)
		resp, err := src.Client.Do(req)
		if err != nil {
			c.metrics.upstream.with("file", "error").Add(1)
			finish(TransportError(src.URL, err))
			return
		}
		switch {
		case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
			resp.Body.Close()
			c.metrics.upstream.with("file", "not_found").Add(1)
			if src.Moved != "" {
				src.URL, src.Moved = src.Moved, ""
				goto retry
			}
			finish(&upstream404{url: httpx.SafeURL(src.URL)})
			return
		case resp.StatusCode != http.StatusOK:
			resp.Body.Close()
			c.metrics.upstream.with("file", "error").Add(1)
			finish(StatusError(src.URL, resp))
			return
		}
		c.metrics.upstream.with("file", "ok").Add(1)
		body, size = resp.Body, resp.ContentLength
		switch {
		case src.Size > 0 && size >= 0 && size != src.Size:
			resp.Body.Close()
			finish(&httpx.UpstreamError{Status: http.StatusBadGateway, Verify: true, Msg: fmt.Sprintf("%s is %d bytes, the metadata says %d; nothing was stored", httpx.SafeURL(src.URL), size, src.Size)})
			return
		case size > c.maxFile || src.Size > c.maxFile:
			resp.Body.Close()
			finish(&httpx.UpstreamError{Status: http.StatusBadGateway, Msg: fmt.Sprintf("%s is larger than MAX_FILE_BYTES (%d)", httpx.SafeURL(src.URL), c.maxFile)})
			return
		case size < 0 && src.Size > 0:
			size = src.Size
		}
	}
	// limit: no download grows past its announced size or MAX_FILE_BYTES.
	limit := c.maxFile
	if size >= 0 {
		limit = size
	}
	defer body.Close()
	spool, releaseRoom, err := c.createSpool(f, size)
	if err != nil {
		finish(err)
		return
	}
	defer releaseRoom()
	f.mu.Lock()
	f.file = spool
	f.size = size
	f.modTime = time.Now()
	f.mu.Unlock()
	readyOnce()
	if lease != nil {
		// From now on the lease is renewed only while bytes arrive.
		lease.RequireProgress()
	}
	// A body that delivers nothing for UpstreamIdleTimeout is given up:
	// a stalled upstream must not hold the file (and, through the lease,
	// every replica) for the whole download timeout.
	var stalled atomic.Bool
	idle := time.AfterFunc(c.idleTimeout, func() { stalled.Store(true); cancel() })
	defer idle.Stop()

	// Storage reads the spool concurrently and commits only on io.EOF,
	// which it gets only after verification.
	putDone := make(chan error, 1)
	if landed {
		putDone <- storage.ErrExists
	} else {
		opts := storage.PutOptions{Size: size, CreateOnly: true, ContentType: httpx.ContentType(f.key)}
		go func() {
			r, stop := f.reader(ctx, false)
			defer stop()
			putDone <- c.store.Put(ctx, f.key, r, opts)
		}()
	}

	hashes := make([]hash.Hash, 0, len(src.Digests)+1)
	for _, d := range src.Digests {
		hashes = append(hashes, d.hash())
	}
	// The sha256 of every download is computed (and logged when stored),
	// so that what was stored can be audited even where the metadata
	// gave no digest.
	stored256 := sha256.New()
	hashes = append(hashes, stored256)
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	var dlErr error
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			idle.Reset(c.idleTimeout)
			if lease != nil {
				lease.Progress()
			}
			if _, werr := spool.Write(buf[:n]); werr != nil { // readers' ReadAt is safe alongside
				dlErr = fmt.Errorf("write spool file: %w", werr)
				break
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
			dlErr = &httpx.UpstreamError{Status: http.StatusBadGateway, Msg: fmt.Sprintf("%s sent more than %d bytes (its announced size or MAX_FILE_BYTES); nothing was stored", httpx.SafeURL(src.URL), limit)}
			break
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			if stalled.Load() {
				rerr = fmt.Errorf("no data for %v (UPSTREAM_IDLE_TIMEOUT)", c.idleTimeout)
			}
			dlErr = TransportError(src.URL, rerr)
			break
		}
	}
	idle.Stop() // the storage write below may take longer than a read
	if !landed {
		c.metrics.upstreamBytes.Add(float64(f.written))
	}
	if dlErr == nil && size >= 0 && f.written != size {
		dlErr = &httpx.UpstreamError{Status: http.StatusBadGateway, Msg: fmt.Sprintf("%s: got %d of %d bytes", httpx.SafeURL(src.URL), f.written, size)}
	}
	for i, d := range src.Digests {
		if got := hashes[i].Sum(nil); dlErr == nil && !d.matches(got) {
			dlErr = &httpx.UpstreamError{Status: http.StatusBadGateway, Verify: true, Msg: fmt.Sprintf("%v: %s has %s %s, the metadata says %s; nothing was stored", errChecksum, httpx.SafeURL(src.URL), d.Alg, hex.EncodeToString(got), d)}
		}
	}
	if dlErr == nil && src.Check != nil && !landed {
		if err := src.Check(spool, f.written); err != nil {
			dlErr = &httpx.UpstreamError{Status: http.StatusBadGateway, Verify: true, Msg: fmt.Sprintf("%s is not a complete archive (%v); nothing was stored", httpx.SafeURL(src.URL), err)}
		}
	}
	if dlErr != nil {
		c.log.Warn("download failed; nothing stored", "key", f.key, "url", httpx.SafeURL(src.URL), "err", dlErr)
	}
	f.mu.Lock()
	if dlErr == nil {
		f.size = f.written
	}
	f.mu.Unlock()
	finish(dlErr)

	perr := <-putDone
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
			c.log.Info("file stored", "key", f.key, "bytes", f.written, "sha256", hex.EncodeToString(stored256.Sum(nil)), "verified", verified)
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

// ServeFile serves the immutable file key: from the disk cache, storage,
// or (cold) from its upstream, resolved by resolve only when needed.
func (c *Core) ServeFile(w http.ResponseWriter, r *http.Request, key string, resolve func(ctx context.Context) (FileSource, error)) error {
	ctx := r.Context()
	h := w.Header()
	h.Set("Content-Type", httpx.ContentType(key))
	h.Set("Accept-Ranges", "bytes")

	if c.distDisk != nil {
		if file, _, ok := c.distDisk.Open(key); ok {
			defer file.Close()
			c.metrics.hit("disk")
			h["X-Cache"] = hvHit
			setImmutable(h)
			fi, _ := file.Stat()
			http.ServeContent(w, r, "", fi.ModTime(), file)
			return nil
		}
	}
	if c.distDisk != nil {
		c.metrics.miss("disk")
	}
	if info, err := c.store.Stat(ctx, key); err == nil {
		c.metrics.hit("storage")
		h["X-Cache"] = hvHit
		served, err := c.serveStored(w, r, info)
		if served {
			return err
		}
		c.log.Warn("storage read failed; trying the upstream", "key", key, "err", err)
	} else if !errors.Is(err, storage.ErrNotFound) {
		c.log.Warn("storage unavailable; trying the upstream", "key", key, "err", err)
	}
	c.metrics.miss("storage")
	if err := c.recentFailure(ctx, key); err != nil {
		return err
	}
	// Finding the file in the metadata gets one upstream timeout in all,
	// however many documents it needs: upstream waits must not add up.
	rctx, cancel := context.WithTimeout(ctx, c.upstreamTimeout)
	src, err := resolve(rctx)
	cancel()
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return &httpx.UpstreamError{Status: http.StatusGatewayTimeout, Msg: fmt.Sprintf("the upstream metadata for this file did not arrive within %v", c.upstreamTimeout)}
		}
		return err
	}
	h["X-Cache"] = hvMiss
	f := c.joinFlight(key, src)
	defer f.release()
	select {
	case <-f.ready:
	case <-ctx.Done():
		return ctx.Err()
	}
	f.mu.Lock()
	size, ferr, finished := f.size, f.err, f.finished
	f.mu.Unlock()
	if finished && ferr != nil {
		return ferr
	}
	if size < 0 || size < smallFile || httpx.HeaderValue(r, "Range") != "" || r.Method == http.MethodHead {
		// Without a length, for a range, for a HEAD (whose 200 promises an
		// immutable file) or for a small file, wait for the verified whole
		// file: a failure is then a clean 502, not an aborted transfer.
		select {
		case <-f.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if f.err != nil {
			return f.err
		}
		setImmutable(h)
		http.ServeContent(w, r, "", f.modTime, io.NewSectionReader(f.file, 0, f.size))
		return nil
	}
	setImmutable(h)
	// The headers a stored copy is served with, Last-Modified among them.
	h.Set("Last-Modified", f.modTime.UTC().Format(http.TimeFormat))
	h.Set("Content-Length", fmt.Sprint(size))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	tr, stop := f.reader(ctx, true)
	defer stop()
	if _, err := io.CopyBuffer(w, tr, *bp); err != nil {
		// Abort the connection: the client must see a truncated transfer.
		reason := "download failed"
		if ctx.Err() != nil {
			reason = "client gone"
		}
		abortResponse(w, r, reason, err)
	}
	return nil
}

// abortResponse ends a response whose headers are sent by cutting the
// connection, so that the client sees a truncated transfer, never a
// clean one; the request log and metrics record it with reason.
func abortResponse(w http.ResponseWriter, r *http.Request, reason string, err error) {
	panic(&httpx.Aborted{Reason: reason, Err: err})
}

// softWriter copies into the disk cache as long as that works: a cache
// that fails (full disk) stops being filled, and never fails the
// response it is filled from.
type softWriter struct {
	w      io.Writer
	failed error
}

func (s *softWriter) Write(p []byte) (int, error) {
	if s.failed == nil {
		if _, err := s.w.Write(p); err != nil {
			s.failed = err
		}
	}
	return len(p), nil
}

// serveStored serves an object from storage, with Range and HEAD. A
// whole-file GET also fills the disk cache as it streams, so that the
// replica keeps serving the file if storage becomes unreachable. It
// returns served=false when storage failed before anything was sent:
// the caller can still fetch the file from its upstream.
func (c *Core) serveStored(w http.ResponseWriter, r *http.Request, info storage.Info) (served bool, err error) {
	whole := httpx.HeaderValue(r, "Range") == ""
	var rc io.ReadCloser
	if r.Method == http.MethodGet && whole {
		// Opened before any header is sent, so that a failing store is a
		// fallback, not a broken response.
		if rc, _, err = c.store.Get(r.Context(), info.Key, storage.Whole); err != nil {
			return false, err
		}
	}
	setImmutable(w.Header())
	var release func()
	if rc != nil && c.distDisk != nil && httpx.HeaderValue(r, "If-None-Match") == "" && httpx.HeaderValue(r, "If-Modified-Since") == "" {
		release, _ = c.distDisk.Reserve(info.Size) // a file that can never fit is not written
	}
	if release != nil {
		defer release()
	}
	if release != nil && info.Size <= c.distDisk.Max() {
		if dw, err := c.distDisk.Create(info.Key); err == nil {
			defer rc.Close()
			w.Header().Set("Last-Modified", info.ModTime.UTC().Format(http.TimeFormat))
			w.Header().Set("Content-Length", fmt.Sprint(info.Size))
			w.WriteHeader(http.StatusOK)
			bp := copyBufs.Get().(*[]byte)
			defer copyBufs.Put(bp)
			sw := &softWriter{w: dw}
			n, err := io.CopyBuffer(w, io.TeeReader(rc, sw), *bp)
			if err != nil || n != info.Size {
				dw.Abort()
				reason := "storage read failed"
				if r.Context().Err() != nil {
					reason = "client gone"
				}
				abortResponse(w, r, reason, err)
			}
			if sw.failed != nil {
				dw.Abort()
				c.metrics.cacheWriteErrors.Inc()
				c.log.Warn("disk cache write failed; file served from storage only", "key", info.Key, "err", sw.failed)
				return true, nil
			}
			_ = dw.Commit(info.Size)
			return true, nil
		}
	}
	rs := &storageSeeker{ctx: r.Context(), store: c.store, key: info.Key, size: info.Size, rc: rc}
	defer rs.Close()
	http.ServeContent(w, r, "", info.ModTime, rs)
	if rs.err != nil && !errors.Is(rs.err, context.Canceled) {
		c.log.Warn("storage read failed mid-response; aborting it", "key", info.Key, "err", rs.err)
		abortResponse(w, r, "storage read failed", rs.err)
	}
	return true, nil
}

// storageSeeker is an io.ReadSeeker over a stored object that opens a
// ranged Get at the position http.ServeContent reads from (rc, when set,
// is already open at rcPos).
type storageSeeker struct {
	ctx   context.Context
	store storage.Store
	key   string
	size  int64
	pos   int64
	rc    io.ReadCloser
	rcPos int64
	err   error
}

func (s *storageSeeker) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		off += s.pos
	case io.SeekEnd:
		off += s.size
	}
	if off < 0 {
		return 0, errors.New("negative position")
	}
	s.pos = off // the open reader, if any, is replaced on the next Read if it is elsewhere
	return off, nil
}

func (s *storageSeeker) Read(p []byte) (int, error) {
	if s.pos >= s.size {
		return 0, io.EOF
	}
	if s.rc != nil && s.rcPos != s.pos {
		s.rc.Close()
		s.rc = nil
	}
	if s.rc == nil {
		rc, _, err := s.store.Get(s.ctx, s.key, storage.Range{Offset: s.pos, Length: -1})
		if err != nil {
			s.err = err
			return 0, err
		}
		s.rc, s.rcPos = rc, s.pos
	}
	n, err := s.rc.Read(p)
	s.pos += int64(n)
	s.rcPos = s.pos
	if err != nil && err != io.EOF {
		s.err = err
	}
	if err == io.EOF && s.pos < s.size {
		s.err = io.ErrUnexpectedEOF
		return n, s.err
	}
	return n, err
}

func (s *storageSeeker) Close() {
	if s.rc != nil {
		s.rc.Close()
	}
}

func setImmutable(h http.Header) {
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
}
