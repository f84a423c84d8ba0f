package proxy

import (
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mirror-proxy/mirror-proxy/fetch"
	"github.com/mirror-proxy/mirror-proxy/h1"
	"github.com/mirror-proxy/mirror-proxy/httpx"
	"github.com/mirror-proxy/mirror-proxy/internal/randid"
	"github.com/mirror-proxy/mirror-proxy/mirror"
)

// Replays: a warm document that its handler marked replayable
// (fetch.Replayable) is kept as its response, header lines rendered once
// and the body shared with the memory entry, and sent again to requests of
// the same shape without routing or running the handler, while its guard
// holds (the memory entry is still the one it came from, and fresh). What
// the server does for every request still happens: the request id, the
// metrics and the request log. Only requests whose every header is one
// the document handlers cannot be told apart by (or one in the key) are
// replayed; a conditional request, a range, an unknown header, HEAD, a
// route that needs a token: all take the full path. Only the HTTP/1.1
// loop (package h1) sends replays.

// replayKey is the shape of a request: what a replayable response may
// depend on.
type replayKey struct {
	host, uri, accept string
	scheme            string // from X-Forwarded-Proto (trusted peers only), when sent
	gzip              bool
}

// replayIgnored are the request headers no document handler reads
// (Authorization included: replays are made only for routes that need no
// token); each ecosystem adds those its clients send (mirror.Type's
// ReplayIgnores).
var replayIgnored = []string{"User-Agent", "Connection", "X-Request-Id", "X-Forwarded-For", "X-Real-Ip", "Authorization",
	"Cache-Control", "Pragma", "Referer", "Accept-Language", "Keep-Alive"}

// replayIgnoredBy is the set of headers a replay may ignore on a server
// whose mirrors are of the given types.
func replayIgnoredBy(types []mirror.Type) map[string]bool {
	m := map[string]bool{}
	for _, h := range replayIgnored {
		m[h] = true
	}
	for _, t := range types {
		for _, h := range t.ReplayIgnores {
			m[http.CanonicalHeaderKey(h)] = true
		}
	}
	return m
}

// replayKeyOf returns the shape of a request that may be replayed; ignored
// are the headers it may carry besides those in the key.
func replayKeyOf(r *http.Request, ignored map[string]bool) (replayKey, bool) {
	if r.Method != http.MethodGet || r.RequestURI == "" || r.Host == "" || !validHost(r.Host) {
		return replayKey{}, false
	}
	fwd := false
	for k, v := range r.Header {
		switch k {
		case "Accept", "Accept-Encoding":
			if len(v) != 1 {
				return replayKey{}, false
			}
		case "X-Forwarded-Proto":
			if len(v) != 1 {
				return replayKey{}, false
			}
			fwd = true
		default:
			if !ignored[k] {
				return replayKey{}, false
			}
		}
	}
	k := replayKey{host: r.Host, uri: r.RequestURI, accept: httpx.HeaderValue(r, "Accept"), gzip: httpx.AcceptsGzip(r)}
	if fwd {
		k.scheme = httpx.RequestScheme(r)
	}
	return k, true
}

// replay is a response kept for replay.
type replay struct {
	guard fetch.ReplayGuard
	route string // the route template, for the metrics
	head  []byte // header lines (Content-Length among them), rendered
	body  []byte
}

func (rp *replay) weight() int64 { return int64(len(rp.head) + len(rp.body)) }

// replays bound what they keep, in number and in bytes (bodies are
// usually the memory entries' own, but a replay keeps its body until it
// is found stale or dropped, after its entry has left the memory cache):
// past either, all are dropped and made again as requests come. The bytes
// are at most a quarter of the memory cache's budget (MEMORY_CACHE_BYTES),
// so that what replays keep alive stays within what the operator allowed.
const (
	maxReplays      = 4096
	maxReplayBytes  = 64 << 20
	maxReplayedBody = 8 << 20 // larger documents take the full path
)

// replayBudget is the bytes replays may keep under a memory cache of
// memory bytes.
func replayBudget(memory int64) int64 { return min(maxReplayBytes, max(memory, 0)/4) }

// replays: lookups read the map without a lock; put and drop keep the
// count and the bytes under mu.
type replays struct {
	m        sync.Map // replayKey → *replay
	mu       sync.Mutex
	n        int
	bytes    int64
	maxBytes int64 // replayBudget
}

func (t *replays) get(k replayKey) *replay {
	v, ok := t.m.Load(k)
	if !ok {
		return nil
	}
	return v.(*replay)
}

func (t *replays) put(k replayKey, rp *replay) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.m.Load(k); ok {
		t.n--
		t.bytes -= old.(*replay).weight()
	}
	if rp.weight() > t.maxBytes {
		return
	}
	if t.n >= maxReplays || t.bytes+rp.weight() > t.maxBytes {
		t.m.Clear()
		t.n, t.bytes = 0, 0
	}
	t.m.Store(k, rp)
	t.n++
	t.bytes += rp.weight()
}

// drop removes rp (found stale) unless it was replaced meanwhile.
func (t *replays) drop(k replayKey, rp *replay) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m.CompareAndDelete(k, rp) {
		t.n--
		t.bytes -= rp.weight()
	}
}

// preparedWriter is the h1 loop's response writer.
type preparedWriter interface {
	http.ResponseWriter
	WritePrepared(head, body []byte) error
}

// recorder is the response writer of a request that may be replayed
// later: it notes what the handler marks (fetch.ReplayRecorder), the
// route (set by adapt, for routes that need no authorization) and the
// status.
type recorder struct {
	http.ResponseWriter
	route  string
	guard  *fetch.ReplayGuard
	body   []byte
	status int
}

var _ fetch.ReplayRecorder = (*recorder)(nil)

func (rec *recorder) MarkReplayable(g fetch.ReplayGuard) { rec.guard = &g }
func (rec *recorder) ReplayBody(body []byte)             { rec.body = body }
func (rec *recorder) Unwrap() http.ResponseWriter        { return rec.ResponseWriter }

func (rec *recorder) WriteHeader(code int) {
	if rec.status == 0 {
		rec.status = code
	}
	rec.ResponseWriter.WriteHeader(code)
}

func (rec *recorder) Write(p []byte) (int, error) {
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return rec.ResponseWriter.Write(p)
}

func (rec *recorder) ReadFrom(src io.Reader) (int64, error) {
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	if rf, ok := rec.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(struct{ io.Writer }{rec.ResponseWriter}, src)
}

func (rec *recorder) Flush() {
	if f, ok := rec.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// replay is what was recorded, when the response may be replayed.
func (rec *recorder) replay() *replay {
	if rec.route == "" || rec.guard == nil || rec.body == nil || rec.status != http.StatusOK || len(rec.body) > maxReplayedBody {
		return nil
	}
	h := http.Header{}
	for k, v := range rec.Header() {
		switch k {
		case echo.HeaderXRequestID, "Date", "Connection", "X-Mirror-Stale":
		default:
			h[k] = v
		}
	}
	if _, ok := h["Content-Length"]; !ok {
		return nil
	}
	return &replay{guard: *rec.guard, route: rec.route, head: h1.AppendHeader(nil, h), body: rec.body}
}

// ServePrepared answers a request from a kept response, when there is
// one that still holds (h1.PreparedHandler: the loop offers every request
// here before it sets up a handler's context and hang-up watch, which a
// replay does not need).
func (s *Server) ServePrepared(w http.ResponseWriter, r *http.Request) bool {
	pw, ok := w.(preparedWriter)
	if !ok {
		return false
	}
	key, ok := replayKeyOf(r, s.replayIgnored)
	return ok && s.replay(pw, r, key)
}

// replay sends the response kept for key, if it still holds (a kept
// response that no longer does is let go of).
func (s *Server) replay(w preparedWriter, r *http.Request, key replayKey) bool {
	rp := s.replays.get(key)
	if rp == nil {
		return false
	}
	if !rp.guard.Holds(s.core) {
		s.replays.drop(key, rp)
		return false
	}
	s.serveReplay(w, r, rp)
	return true
}

var _ h1.PreparedHandler = (*Server)(nil)

// serveReplay sends a kept response, with what the server adds to every
// request (see frame).
func (s *Server) serveReplay(w preparedWriter, r *http.Request, rp *replay) {
	start := time.Now()
	id := httpx.HeaderValue(r, "X-Request-Id")
	if !validRequestID(id) {
		id = randid.New()
	}
	w.Header()[echo.HeaderXRequestID] = []string{id}
	size := int64(len(rp.body))
	if err := w.WritePrepared(rp.head, rp.body); err != nil {
		size = 0
	}
	m := s.core.Metrics()
	m.Replayed()
	m.Observe(rp.route, r.Method, http.StatusOK, size, time.Since(start))
	s.logRequest(r, id, http.StatusOK, size, start, func() string { return s.e.IPExtractor(r) })
}
