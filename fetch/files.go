package fetch

// This file fetches, verifies and stores files (a cold npm tarball, a
// wheel, a dist, a NAR): ServeFile looks in the disk cache and storage,
// and on a miss resolves the file's upstream URL and digests through the
// ecosystem (npm's tarball handler in mirror/npm/serve.go), joins or
// starts one download per key (flight.go; download.go claims it with a
// Redis lease across replicas), streams it to every waiting client while
// spooling it, checks every digest (and the ecosystem's Check) on the
// complete bytes, and only then commits it to storage and the disk cache;
// a failure commits nothing and aborts the clients' transfers.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

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

// ServeFile serves the immutable file key: from the disk cache, storage,
// or (cold) from its upstream, resolved by resolve only when needed.
func (c *Core) ServeFile(w http.ResponseWriter, r *http.Request, key string, resolve func(ctx context.Context) (FileSource, error)) error {
	ctx := r.Context()
	h := w.Header()
	h.Set("Content-Type", httpx.ContentType(key))
	h.Set("Accept-Ranges", "bytes")
	if served, err := c.serveKept(w, r, key); served {
		if err == nil {
			c.noteAccess(key)
		}
		return err
	}
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
	if err := c.serveFlight(w, r, f); err != nil {
		return err
	}
	c.noteAccess(key)
	return nil
}

// serveKept serves key from the disk cache or storage; served is false
// when neither has it (or storage failed to read: the upstream is tried).
func (c *Core) serveKept(w http.ResponseWriter, r *http.Request, key string) (bool, error) {
	h := w.Header()
	if c.distDisk != nil {
		if file, _, ok := c.distDisk.Open(key); ok {
			defer file.Close()
			c.metrics.hit(key, "disk")
			h["X-Cache"] = hvHit
			setImmutable(h)
			fi, _ := file.Stat()
			http.ServeContent(w, r, "", fi.ModTime(), file)
			return true, nil
		}
		c.metrics.miss(key, "disk")
	}
	// A whole GET asks storage once (the Get says the object's size and
	// time); HEAD and ranges ask for its metadata first.
	var (
		rc   io.ReadCloser
		info storage.Info
		err  error
	)
	if r.Method == http.MethodGet && httpx.HeaderValue(r, "Range") == "" {
		rc, info, err = c.store.Get(r.Context(), key, storage.Whole)
	} else {
		info, err = c.store.Stat(r.Context(), key)
	}
	if err == nil {
		c.metrics.hit(key, "storage")
		h["X-Cache"] = hvHit
		served, err := c.serveStored(w, r, info, rc)
		if served {
			return true, err
		}
		c.log.Warn("storage read failed; trying the upstream", "key", key, "err", err)
	} else if !errors.Is(err, storage.ErrNotFound) {
		c.log.Warn("storage unavailable; trying the upstream", "key", key, "err", err)
	}
	c.metrics.miss(key, "storage")
	return false, nil
}

// serveFlight serves a file as its download runs: a large file streams
// while it downloads (its last byte held back until it is verified);
// a small one, one of unknown size, a range or a HEAD waits for the
// verified whole file.
func (c *Core) serveFlight(w http.ResponseWriter, r *http.Request, f *flight) error {
	ctx := r.Context()
	h := w.Header()
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
// the caller can still fetch the file from its upstream. rc, when not
// nil, is the object already opened whole (a whole GET), else it is read
// as ServeContent asks.
func (c *Core) serveStored(w http.ResponseWriter, r *http.Request, info storage.Info, rc io.ReadCloser) (served bool, err error) {
	setImmutable(w.Header())
	var release func()
	if rc != nil && c.distDisk != nil && httpx.HeaderValue(r, "If-None-Match") == "" && httpx.HeaderValue(r, "If-Modified-Since") == "" {
		release, _ = c.distDisk.Reserve(info.Size) // a file that can never fit is not written
	}
	if release != nil {
		defer release()
	}
	if rc != nil {
		rc = verifiedRead(rc, info)
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
				switch {
				case errors.Is(err, errCorruptStored):
					reason = "stored file corrupt"
					c.corruptStored(info.Key, err)
				case r.Context().Err() != nil:
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
	if rc == nil {
		// A single range reads only its bytes from storage, not the
		// object's whole tail.
		rs.rangeStart, rs.rangeEnd, rs.ranged = singleRange(httpx.HeaderValue(r, "Range"), info.Size)
	}
	defer rs.Close()
	http.ServeContent(w, r, "", info.ModTime, rs)
	if rs.err != nil && !errors.Is(rs.err, context.Canceled) {
		if errors.Is(rs.err, errCorruptStored) {
			c.corruptStored(info.Key, rs.err)
			abortResponse(w, r, "stored file corrupt", rs.err)
		}
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
	rcEnd int64 // where rc's bytes end
	err   error
	// ranged: the request asks for the bytes [rangeStart, rangeEnd) only;
	// a read there asks storage for no more.
	ranged               bool
	rangeStart, rangeEnd int64
}

// singleRange reads a Range header that asks for one range of an object
// of size bytes ("bytes=a-b", "bytes=a-", "bytes=-n"): the bytes
// [start, end). ok is false for anything else (several ranges, none,
// malformed), which http.ServeContent answers as it does.
func singleRange(h string, size int64) (start, end int64, ok bool) {
	spec, found := strings.CutPrefix(h, "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false
	}
	a, b, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false
	}
	if a == "" { // the last b bytes
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n <= 0 {
			return 0, 0, false
		}
		return max(size-n, 0), size, true
	}
	start, err := strconv.ParseInt(a, 10, 64)
	if err != nil || start < 0 || start >= size {
		return 0, 0, false
	}
	if b == "" {
		return start, size, true
	}
	last, err := strconv.ParseInt(b, 10, 64)
	if err != nil || last < start {
		return 0, 0, false
	}
	return start, min(last+1, size), true
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
		rng := storage.Range{Offset: s.pos, Length: -1}
		if s.ranged && s.pos >= s.rangeStart && s.pos < s.rangeEnd {
			rng.Length = s.rangeEnd - s.pos
		}
		rc, _, err := s.store.Get(s.ctx, s.key, rng)
		if err != nil {
			s.err = err
			return 0, err
		}
		s.rc, s.rcPos, s.rcEnd = rc, s.pos, s.size
		if rng.Length > 0 {
			s.rcEnd = s.pos + rng.Length
		}
	}
	n, err := s.rc.Read(p)
	s.pos += int64(n)
	s.rcPos = s.pos
	if err == io.EOF && s.pos == s.rcEnd && s.pos < s.size {
		// The end of the range asked for, not of the object: a read past
		// it opens another.
		s.rc.Close()
		s.rc = nil
		return n, nil
	}
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
