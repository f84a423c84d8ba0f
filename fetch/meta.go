package fetch

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mirror-proxy/mirror-proxy/httpx"
	"github.com/mirror-proxy/mirror-proxy/storage"
)

// errTooLarge: a document or file is larger than its limit.
var errTooLarge = errors.New("larger than the configured limit")

// retryAfterFailure is how long (at most; never more than the TTL) a
// failed revalidation is not retried: meanwhile the stale copy is served
// without waiting on a dead upstream.
const retryAfterFailure = 30 * time.Second

// MetaEntry is one mutable metadata document as stored: the body
// gzip-compressed, so that a warm hit is a memory copy, with the upstream's
// validators carried in the gzip header's comment. The stored object is
// thus a plain .gz file that zcat can read.
type MetaEntry struct {
	key string
	// gzBody holds the stored object (gzip of the (rewritten) body) and,
	// once a client without gzip asked, the plain body.
	gzBody
	size     int64 // uncompressed size
	header   envelope
	notFound bool
	// rejected is set on an entry that records a document the proxy
	// refused (too large, invalid): it answers that error until it
	// expires, so that the refusal is not refetched by every request.
	rejected error

	// mod is the Last-Modified served to clients: the upstream's when it
	// sent one, else the time the object was stored. Both come from the
	// stored object, so every replica serves the same value. It and the
	// header values below are computed once (warm hits are hot).
	mod          time.Time
	lastModified []string

	checked atomic.Int64 // unix nanos: last time the upstream confirmed it
	failed  atomic.Int64 // unix nanos: last failed revalidation

	id uint64 // see ID

	parseOnce  sync.Once
	parsed     any
	parseErr   error
	parsedDone atomic.Bool
}

// weight is what the memory cache counts for the entry: the stored bytes,
// the plain body once kept, and an estimate of the index built from it
// (parsed models hold every string of the document and the rendered
// pages; three times the uncompressed size covers the measured cases).
func (e *MetaEntry) weight() int64 {
	w := int64(len(e.gz))
	if e.plain.Load() != nil {
		w += e.size
	}
	if e.parsedDone.Load() {
		w += 3 * e.size
	}
	return max(w, 64)
}

// envelope is what the gzip comment holds.
type envelope struct {
	LastModified string `json:"lm,omitempty"`   // upstream Last-Modified, verbatim
	ETag         string `json:"etag,omitempty"` // upstream ETag
	Fetched      int64  `json:"fetched"`        // unix seconds when stored
	Size         int64  `json:"size"`
	URL          string `json:"url,omitempty"`
	Serial       int64  `json:"serial,omitempty"`
}

// finish computes the values every response of the entry uses.
func (e *MetaEntry) finish() *MetaEntry {
	e.id = entryIDs.Add(1)
	e.mod = time.Unix(e.header.Fetched, 0).UTC()
	if t, err := http.ParseTime(e.header.LastModified); err == nil {
		e.mod = t.UTC()
	}
	e.lastModified = []string{e.mod.Format(http.TimeFormat)}
	e.gzLen = []string{strconv.Itoa(len(e.gz))}
	e.rawLen = []string{strconv.FormatInt(e.size, 10)}
	return e
}

// entryIDs numbers entries as they are made.
var entryIDs atomic.Uint64

// ID identifies this version of the document in this process (a key for
// what is derived from it that does not keep the entry alive).
func (e *MetaEntry) ID() uint64 { return e.id }

// UpstreamModified is the Last-Modified the upstream sent with the stored
// document (zero when it sent none): the only publish time some
// ecosystems have (Maven's files).
func (e *MetaEntry) UpstreamModified() time.Time {
	t, err := http.ParseTime(e.header.LastModified)
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

// Body returns the stored document, uncompressed (a copy is not made:
// callers must not change it). It decompresses on every call unless a
// client without gzip made the plain bytes already: a handler that sends
// them on every request uses Core.PlainBody.
func (e *MetaEntry) Body() ([]byte, error) { return e.body() }

// PlainBody is the entry's uncompressed document, made once and kept with
// it (and counted by the memory cache), as ServeMeta keeps it for clients
// without gzip: for handlers that send the plain bytes themselves.
func (c *Core) PlainBody(e *MetaEntry) ([]byte, error) {
	p, made, err := e.identity()
	if made {
		c.reweigh(e)
	}
	return p, err
}

// body returns the uncompressed document.
func (e *MetaEntry) body() ([]byte, error) {
	if p := e.plain.Load(); p != nil {
		return *p, nil
	}
	return gunzip(e.gz)
}

func gunzip(gz []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}

// gzBody is a document kept gzip-compressed, which clients that accept
// gzip get as is (a memory copy), with its header values; its plain bytes
// are made once, on the first request of a client that does not accept
// gzip, and kept beside, so that such clients get a memory copy too.
type gzBody struct {
	gz            []byte
	gzLen, rawLen []string // Content-Length values, computed once
	plain         atomic.Pointer[[]byte]
}

// identity returns the plain bytes; made reports that this call made
// them (the owner may count the memory).
func (b *gzBody) identity() (plain []byte, made bool, err error) {
	if p := b.plain.Load(); p != nil {
		return *p, false, nil
	}
	p, err := gunzip(b.gz)
	if err != nil {
		return nil, false, err
	}
	return p, b.plain.CompareAndSwap(nil, &p), nil
}

// parse runs fn once per entry and keeps its result (an index built from
// the document), so that it is not rebuilt on every request.
func (e *MetaEntry) parse(fn func([]byte) (any, error)) (any, error) {
	e.parseOnce.Do(func() {
		b, err := e.body()
		if err != nil {
			e.parseErr = err
			return
		}
		e.parsed, e.parseErr = fn(b)
		e.parsedDone.Store(e.parseErr == nil)
	})
	return e.parsed, e.parseErr
}

// reweigh makes the memory cache count what e retains now.
func (c *Core) reweigh(e *MetaEntry) {
	c.mem.Resize(e.key, func(x *MetaEntry) bool { return x == e }, e.weight())
}

// Parse builds (once) the index of an entry and makes the memory cache
// count what the entry now retains.
func (c *Core) parse(e *MetaEntry, fn func([]byte) (any, error)) (any, error) {
	first := false
	v, err := e.parse(func(b []byte) (any, error) { first = true; return fn(b) })
	if first && err == nil {
		c.reweigh(e)
	}
	return v, err
}

func asciiJSON(v any) string {
	b, _ := json.Marshal(v)
	var sb strings.Builder
	for _, r := range string(b) {
		if r < 0x20 || r > 0x7e {
			fmt.Fprintf(&sb, `\u%04x`, r)
			continue
		}
		sb.WriteRune(r)
	}
	return sb.String()
}

func encodeMeta(key string, body []byte, env envelope) (*MetaEntry, error) {
	env.Size = int64(len(body))
	gz := gzipBytes(body, gzip.BestCompression, gzip.Header{Comment: asciiJSON(env), ModTime: time.Unix(env.Fetched, 0)})
	e := (&MetaEntry{key: key, gzBody: gzBody{gz: gz}, size: env.Size, header: env}).finish()
	e.checked.Store(time.Unix(env.Fetched, 0).UnixNano())
	return e, nil
}

func decodeMeta(key string, gz []byte) (*MetaEntry, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, fmt.Errorf("stored metadata %s is not gzip: %w", key, err)
	}
	var env envelope
	if err := json.Unmarshal([]byte(zr.Comment), &env); err != nil {
		return nil, fmt.Errorf("stored metadata %s has no envelope: %w", key, err)
	}
	// Check the whole stream now: a damaged object is refetched, not served.
	n, err := io.Copy(io.Discard, zr)
	if err != nil || n != env.Size {
		return nil, fmt.Errorf("stored metadata %s is damaged (%d of %d bytes): %v", key, n, env.Size, err)
	}
	e := (&MetaEntry{key: key, gzBody: gzBody{gz: gz}, size: env.Size, header: env}).finish()
	e.checked.Store(time.Unix(env.Fetched, 0).UnixNano())
	return e, nil
}

// MetaSource describes one metadata document: where it is kept, where it
// comes from, and how it is checked and rewritten before it is stored.
type MetaSource struct {
	Key         string
	URL         string
	Client      *http.Client
	TTL         time.Duration
	NotFoundTTL time.Duration
	Accept      string
	// Transform validates and rewrites the upstream body; nil keeps it.
	// resp is the final upstream response (after redirects): its URL is the
	// base for relative links, its Content-Type tells the format.
	Transform func(body []byte, resp *http.Response) ([]byte, error)
	// SerialHeader names a response header carrying a monotonic serial
	// (PyPI's X-PyPI-Last-Serial): a response with an older serial than the
	// stored one comes from a stale upstream node and is not stored.
	SerialHeader string
	// StaleWhileRevalidate serves an expired entry at once and refreshes it
	// in the background (for big documents nobody should wait for).
	StaleWhileRevalidate bool
	// Agent, when set, goes before the proxy's own User-Agent (see
	// FileSource.Agent); Key must include what it selects.
	Agent string
	// Replaced, when set, is told the previous and the new body when a
	// stored document is replaced by a newer one (to drop stored files
	// whose digest the new document changed).
	Replaced func(ctx context.Context, old, new []byte)
}

// MetaResult is what meta returns: the entry, and whether it is stale
// (served because the upstream failed).
type MetaResult struct {
	Entry *MetaEntry
	Stale bool
}

func (c *Core) fresh(e *MetaEntry, src *MetaSource, now time.Time) bool {
	ttl := src.TTL
	switch {
	case e.rejected != nil:
		ttl = min(retryAfterFailure, src.TTL)
	case e.notFound:
		ttl = src.NotFoundTTL
	}
	return now.Sub(time.Unix(0, e.checked.Load())) < ttl
}

// FreshInMemory returns the memory copy of key while it is fresh for ttl:
// the warm path, which needs no MetaSource.
func (c *Core) FreshInMemory(key string, ttl time.Duration) (MetaResult, bool) {
	if e, ok := c.mem.Get(key); ok && !e.notFound && e.rejected == nil && c.now().Sub(time.Unix(0, e.checked.Load())) < ttl {
		c.metrics.hit(key, "memory")
		return MetaResult{Entry: e}, true
	}
	return MetaResult{}, false
}

// MetaOf is Meta for the warm path: a copy of key fresh in memory (for
// ttl) is returned without src being called, so that a request served
// from memory builds no MetaSource (a struct and a Transform closure).
func (c *Core) MetaOf(ctx context.Context, key string, ttl time.Duration, src func() *MetaSource) (MetaResult, error) {
	if res, ok := c.FreshInMemory(key, ttl); ok {
		return res, nil
	}
	return c.Meta(ctx, src())
}

// Meta returns the metadata document for src: from memory, the disk cache
// or storage while fresh, else revalidated against the upstream with a
// conditional request. Concurrent callers for one key share one refresh.
// It returns ErrNotFound for an upstream 404 and an *UpstreamError when
// the upstream failed and nothing is stored.
func (c *Core) Meta(ctx context.Context, src *MetaSource) (MetaResult, error) {
	e, ok := c.mem.Get(src.Key)
	if ok && c.fresh(e, src, c.now()) {
		return entryResult(e, false)
	}
	ch := c.sf.DoChan(src.Key, func() (any, error) {
		// Detached: one client giving up must not fail the others.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*c.upstreamTimeout+10*time.Second)
		defer cancel()
		return c.refreshMeta(rctx, src)
	})
	if ok && !e.notFound && e.rejected == nil && src.StaleWhileRevalidate {
		return entryResult(e, false) // the refresh goes on in the background
	}
	select {
	case r := <-ch:
		if r.Err != nil {
			return MetaResult{}, r.Err
		}
		res := r.Val.(MetaResult)
		return entryResult(res.Entry, res.Stale)
	case <-ctx.Done():
		return MetaResult{}, ctx.Err()
	}
}

func entryResult(e *MetaEntry, stale bool) (MetaResult, error) {
	if e.rejected != nil {
		return MetaResult{}, e.rejected
	}
	if e.notFound {
		return MetaResult{}, &upstream404{url: e.header.URL}
	}
	return MetaResult{Entry: e, Stale: stale}, nil
}

func (c *Core) loadMeta(ctx context.Context, key string, skipDisk bool) *MetaEntry {
	if c.metaDisk != nil && !skipDisk {
		if f, _, ok := c.metaDisk.Open(key); ok {
			b, err := io.ReadAll(io.LimitReader(f, c.maxMeta))
			f.Close()
			if err == nil {
				if e, err := decodeMeta(key, b); err == nil {
					c.metrics.hit(key, "disk")
					return e
				}
			}
			c.metaDisk.Remove(key)
		}
		c.metrics.miss(key, "disk")
	}
	rc, _, err := c.store.Get(ctx, key, storage.Whole)
	if err != nil {
		c.metrics.miss(key, "storage")
		if !errors.Is(err, storage.ErrNotFound) {
			c.log.Warn("storage read failed; asking the upstream", "key", key, "err", err)
		}
		return nil
	}
	c.metrics.hit(key, "storage")
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, c.maxMeta))
	if err != nil {
		c.log.Warn("storage read failed; asking the upstream", "key", key, "err", err)
		return nil
	}
	e, err := decodeMeta(key, b)
	if err != nil {
		c.log.Warn("ignoring a damaged stored object", "key", key, "err", err)
		return nil
	}
	if c.metaDisk != nil {
		_ = c.metaDisk.Put(key, bytes.NewReader(b))
	}
	return e
}

// refreshMeta finds a document: the copy held (memory, disk cache,
// storage) while it is fresh, else, with Redis, another replica's word
// or its fetch, else the upstream's answer to a conditional request.
func (c *Core) refreshMeta(ctx context.Context, src *MetaSource) (MetaResult, error) {
	now := c.now()
	e, done := c.localMeta(ctx, src, now)
	if done {
		return MetaResult{Entry: e}, nil
	}
	rf := &refresh{c: c, src: src, e: e, have: e != nil && !e.notFound, now: now}
	if rf.have && now.Sub(time.Unix(0, e.failed.Load())) < min(retryAfterFailure, src.TTL) {
		return MetaResult{Entry: e, Stale: true}, nil
	}
	if c.coord != nil {
		res, done, release := rf.coordinate(ctx)
		defer release()
		if done {
			return res, nil
		}
	}
	return rf.revalidate(ctx)
}

// localMeta returns the copy of a document this replica holds (memory,
// then disk cache and storage), and done when it is fresh (or a recent
// refusal) and is the answer.
func (c *Core) localMeta(ctx context.Context, src *MetaSource, now time.Time) (e *MetaEntry, done bool) {
	e, ok := c.mem.Get(src.Key)
	if ok && e.rejected != nil {
		if c.fresh(e, src, now) {
			return e, true
		}
		e, ok = nil, false
	}
	if ok && !e.notFound {
		c.metrics.hit(src.Key, "memory")
	} else {
		c.metrics.miss(src.Key, "memory")
		if loaded := c.loadMeta(ctx, src.Key, false); loaded != nil {
			e = loaded
			c.mem.Add(src.Key, e, e.weight())
		}
	}
	return e, e != nil && c.fresh(e, src, now)
}

// refresh is one revalidation of a document against its upstream.
type refresh struct {
	c    *Core
	src  *MetaSource
	e    *MetaEntry // the copy held (nil: none)
	have bool       // e is a document (not a remembered 404)
	now  time.Time
}

// coordinate asks the other replicas (Redis) before the upstream: done
// when one confirmed the document within the TTL, or is fetching it now
// (its copy, or this one's while it is just expired, is the answer).
// release ends this replica's turn to revalidate.
func (rf *refresh) coordinate(ctx context.Context) (res MetaResult, done bool, release func()) {
	c, src, e := rf.c, rf.src, rf.e
	if rf.have {
		// Shared freshness: if any replica confirmed this document within
		// the TTL, take its word (and its newer copy from storage, when it
		// stored one) instead of asking the upstream again.
		if t, version, ok := c.coord.LastChecked(ctx, src.Key); ok && rf.now.Sub(t) < src.TTL {
			if version == e.header.Fetched {
				e.checked.Store(t.UnixNano())
				return MetaResult{Entry: e}, true, func() {}
			}
			if ne := c.loadMeta(ctx, src.Key, true); ne != nil && ne.header.Fetched >= version {
				ne.checked.Store(t.UnixNano())
				c.mem.Add(src.Key, ne, ne.weight())
				return MetaResult{Entry: ne}, true, func() {}
			}
		}
	}
	// One replica revalidates. The others keep serving their copy, just
	// expired, for the moment it takes; without a copy (a cold document)
	// they wait for it to land in storage, and fetch it themselves only
	// if it does not.
	release = func() {}
	lease, ok, err := c.coord.TryLease(ctx, "revalidate:"+src.Key, 10*time.Second)
	if lease != nil {
		release = lease.Release
	}
	if err == nil && !ok {
		if rf.have {
			return MetaResult{Entry: e}, true, release
		}
		if ne := c.awaitMeta(ctx, src.Key); ne != nil {
			return MetaResult{Entry: ne}, true, release
		}
	}
	return MetaResult{}, false, release
}

// request is the conditional request for the document.
func (rf *refresh) request(ctx context.Context) (*http.Request, error) {
	src := rf.src
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src.URL, nil)
	if err != nil {
		return nil, &httpx.UpstreamError{Status: http.StatusBadGateway, Msg: fmt.Sprintf("bad upstream URL %q: %v", httpx.SafeURL(src.URL), err)}
	}
	req.Header.Set("Accept-Encoding", "gzip")
	setAgent(req, src.Agent)
	if src.Accept != "" {
		req.Header.Set("Accept", src.Accept)
	}
	if rf.have {
		if rf.e.header.LastModified != "" {
			req.Header.Set("If-Modified-Since", rf.e.header.LastModified)
		}
		if rf.e.header.ETag != "" {
			req.Header.Set("If-None-Match", rf.e.header.ETag)
		}
	}
	return req, nil
}

// revalidate asks the upstream: unchanged keeps the copy held, a 404 is
// remembered for a while, a new document is accepted.
func (rf *refresh) revalidate(ctx context.Context) (MetaResult, error) {
	c, src, e := rf.c, rf.src, rf.e
	req, err := rf.request(ctx)
	if err != nil {
		return MetaResult{}, err
	}
	// Fetches at once are bounded: each may hold a document (up to
	// MAX_METADATA_BYTES) and its parsed form in memory.
	select {
	case c.fetchSem <- struct{}{}:
		defer func() { <-c.fetchSem }()
	case <-ctx.Done():
		if rf.have {
			return MetaResult{Entry: e, Stale: true}, nil
		}
		return MetaResult{}, &httpx.UpstreamError{Status: http.StatusServiceUnavailable, RetryAfter: "5", Msg: "too many metadata fetches at once; retry shortly"}
	}
	resp, err := src.Client.Do(req)
	if err != nil {
		return rf.fail(TransportError(src.URL, err))
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotModified && rf.have:
		c.metrics.fetched(src.Key, "metadata", "not_modified")
		return rf.confirmed(ctx), nil
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		c.metrics.fetched(src.Key, "metadata", "not_found")
		neg := &MetaEntry{key: src.Key, notFound: true, header: envelope{URL: httpx.SafeURL(src.URL)}}
		neg.checked.Store(rf.now.UnixNano())
		c.mem.Add(src.Key, neg, 64)
		return MetaResult{Entry: neg}, nil
	case resp.StatusCode != http.StatusOK:
		return rf.fail(StatusError(src.URL, resp))
	}
	return rf.accept(ctx, resp)
}

// confirmed keeps the copy held as fresh (the upstream says it is
// current), and tells the other replicas.
func (rf *refresh) confirmed(ctx context.Context) MetaResult {
	rf.e.checked.Store(rf.now.UnixNano())
	rf.c.shareChecked(ctx, rf.src, rf.e, rf.now)
	return MetaResult{Entry: rf.e}
}

// fail answers an upstream failure: the copy held, stale, when there is
// one.
func (rf *refresh) fail(uerr *httpx.UpstreamError) (MetaResult, error) {
	rf.c.metrics.fetched(rf.src.Key, "metadata", "error")
	if rf.have {
		rf.e.failed.Store(rf.now.UnixNano())
		rf.c.log.Warn("upstream failed; serving stale metadata", "key", rf.src.Key, "url", httpx.SafeURL(rf.src.URL), "err", uerr.Msg)
		return MetaResult{Entry: rf.e, Stale: true}, nil
	}
	return MetaResult{}, uerr
}

// reject is fail for a document refused (too large, rejected by the
// ecosystem): the refusal is remembered for a short while, as the same
// bytes would be refused again.
func (rf *refresh) reject(uerr *httpx.UpstreamError) (MetaResult, error) {
	if !rf.have {
		rej := &MetaEntry{key: rf.src.Key, rejected: uerr}
		rej.checked.Store(rf.now.UnixNano())
		rf.c.mem.Add(rf.src.Key, rej, 64)
	}
	return rf.fail(uerr)
}

// accept reads a new document from the upstream's 200, has the ecosystem
// check and transform it, and keeps it.
func (rf *refresh) accept(ctx context.Context, resp *http.Response) (MetaResult, error) {
	c, src := rf.c, rf.src
	body, release, err := c.ReadBody(ctx, resp)
	defer release()
	switch {
	case errors.Is(err, errBusy):
		return rf.fail(&httpx.UpstreamError{Status: http.StatusServiceUnavailable, RetryAfter: "5", Msg: err.Error()})
	case errors.Is(err, errTooLarge):
		return rf.reject(&httpx.UpstreamError{Status: http.StatusBadGateway, Msg: fmt.Sprintf("upstream document %s is %v (MAX_METADATA_BYTES=%d)", httpx.SafeURL(src.URL), err, c.maxMeta)})
	case err != nil:
		return rf.fail(&httpx.UpstreamError{Status: http.StatusBadGateway, Msg: fmt.Sprintf("reading %s: %v", httpx.SafeURL(src.URL), err)})
	}
	var serial int64
	if src.SerialHeader != "" {
		serial, _ = strconv.ParseInt(resp.Header.Get(src.SerialHeader), 10, 64)
		if rf.have && serial > 0 && serial < rf.e.header.Serial {
			c.log.Warn("upstream answered with an older serial; keeping the stored page", "key", src.Key,
				"stored_serial", rf.e.header.Serial, "upstream_serial", serial)
			return rf.confirmed(ctx), nil
		}
	}
	c.metrics.fetched(src.Key, "metadata", "ok")
	if src.Transform != nil {
		if body, err = src.Transform(body, resp); err != nil {
			return rf.reject(&httpx.UpstreamError{Status: http.StatusBadGateway, Msg: fmt.Sprintf("upstream document %s rejected: %v", httpx.SafeURL(src.URL), err)})
		}
	}
	ne, err := encodeMeta(src.Key, body, envelope{
		LastModified: resp.Header.Get("Last-Modified"), ETag: resp.Header.Get("ETag"),
		Fetched: rf.now.Unix(), URL: httpx.SafeURL(src.URL), Serial: serial,
	})
	if err != nil {
		return rf.fail(&httpx.UpstreamError{Status: http.StatusBadGateway, Msg: err.Error()})
	}
	rf.keep(ctx, ne, body)
	return MetaResult{Entry: ne}, nil
}

// keep stores a new document (storage, then the disk cache and memory),
// tells the other replicas, and the ecosystem what it replaced.
func (rf *refresh) keep(ctx context.Context, ne *MetaEntry, body []byte) {
	c, src := rf.c, rf.src
	ne.checked.Store(rf.now.UnixNano())
	if err := c.store.Put(ctx, src.Key, bytes.NewReader(ne.gz), storage.PutOptions{Size: int64(len(ne.gz)), ContentType: "application/gzip"}); err != nil {
		c.metrics.notStored.with("metadata").Add(1)
		c.log.Warn("storage write failed; metadata served from memory only", "key", src.Key, "err", err)
	} else {
		c.shareChecked(ctx, src, ne, rf.now)
		if c.coord != nil {
			c.coord.Invalidate(ctx, c.id+" "+src.Key)
		}
	}
	if c.metaDisk != nil {
		_ = c.metaDisk.Put(src.Key, bytes.NewReader(ne.gz))
	}
	c.mem.Add(src.Key, ne, ne.weight())
	if rf.have && src.Replaced != nil {
		if old, err := rf.e.body(); err == nil {
			src.Replaced(ctx, old, body)
		}
	}
}

// DropFile removes a stored file that the metadata no longer vouches for
// (its digest changed upstream), from storage and from every replica's
// disk cache, so that the next request fetches and verifies it afresh.
func (c *Core) DropFile(ctx context.Context, key string) {
	if err := c.store.Delete(ctx, key); err != nil && !errors.Is(err, storage.ErrNotFound) {
		c.log.Warn("could not drop a file whose digest changed upstream", "key", key, "err", err)
	}
	if c.distDisk != nil {
		c.distDisk.Remove(key)
	}
	if c.coord != nil {
		c.coord.Invalidate(ctx, c.id+" "+key)
	}
	c.log.Info("the upstream changed this file's digest; the stored copy was dropped", "key", key)
}

// awaitMeta waits (a bounded time) for the document key that another
// replica is fetching to appear in storage; nil when it does not.
func (c *Core) awaitMeta(ctx context.Context, key string) *MetaEntry {
	deadline := time.Now().Add(min(c.upstreamTimeout, 10*time.Second))
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
		if ne := c.loadMeta(ctx, key, true); ne != nil {
			c.mem.Add(key, ne, ne.weight())
			return ne
		}
		if held, err := c.coord.Held(ctx, "revalidate:"+key); err != nil || !held {
			// Done: it stored the document just now, or gave up (or found
			// nothing to store), and then we ask ourselves.
			if ne := c.loadMeta(ctx, key, true); ne != nil {
				c.mem.Add(key, ne, ne.weight())
				return ne
			}
			return nil
		}
	}
	return nil
}

// shareChecked tells the other replicas that the stored version of a
// document was confirmed at now.
func (c *Core) shareChecked(ctx context.Context, src *MetaSource, e *MetaEntry, now time.Time) {
	if c.coord != nil {
		c.coord.Checked(ctx, src.Key, now, e.header.Fetched, 2*src.TTL)
	}
}

// DropMeta forgets a stored document everywhere (storage, memory, the disk
// cache, other replicas' memory): it is fetched again when next asked for
// (a narinfo whose NAR did not verify).
func (c *Core) DropMeta(ctx context.Context, key string) {
	if err := c.store.Delete(ctx, key); err != nil && !errors.Is(err, storage.ErrNotFound) {
		c.log.Warn("could not drop a document", "key", key, "err", err)
	}
	c.mem.Remove(key)
	if c.metaDisk != nil {
		c.metaDisk.Remove(key)
	}
	if c.coord != nil {
		c.coord.Invalidate(ctx, c.id+" "+key)
	}
}

// Parsed returns fn(body) for the stored version e, computed once and kept
// with it (the memory cache counts what it holds): the parsed form of a
// document, typed.
func Parsed[T any](c *Core, e *MetaEntry, fn func([]byte) (T, error)) (T, error) {
	v, err := c.parse(e, func(b []byte) (any, error) { return fn(b) })
	if err != nil {
		var zero T
		return zero, err
	}
	t, ok := v.(T)
	if !ok {
		var zero T
		return zero, fmt.Errorf("the document %s was parsed as %T, not %T", e.key, v, zero)
	}
	return t, nil
}
