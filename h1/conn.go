package h1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// Connection states, for Shutdown: only an idle connection (waiting for
// its next request) is closed under its feet.
const (
	stateActive int32 = iota
	stateIdle
	stateClosed
)

// readBufSize is the read buffer, and so the largest header block the loop
// takes (net/http takes the rest: up to its MaxHeaderBytes, 1 MB).
const readBufSize = 8 << 10

// watchAfter is how long a handler runs before the connection is watched
// for a client that hangs up (which cancels the request's context, as
// net/http does for every request). Warm hits finish long before it.
const watchAfter = 50 * time.Millisecond

// outLimit is how much small output is gathered before it is written.
const outLimit = 32 << 10

var aLongTimeAgo = time.Unix(1, 0)

type conn struct {
	s      *Server
	ph     PreparedHandler // the Handler, when it is one
	nc     net.Conn
	cr     connReader
	br     *bufio.Reader
	remote string
	ctx    context.Context
	state  atomic.Int32

	req  http.Request // the request being parsed and served, before it gets a context
	resp response     // the response being written (one per connection, reset per request)
	hdr  http.Header  // its header map, cleared and used again

	out  []byte // gathered output not yet written
	body []byte // the body of the current response while its length is open
	iov  [2][]byte
	bufs net.Buffers

	// accepted is when the connection was accepted; served counts the
	// requests read on it (the first has the header timeout from accepted).
	accepted time.Time
	served   int
	// idleSet is when the idle deadline was last set (zero: another
	// deadline, or none, is in place).
	idleSet time.Time

	closeAfter bool // the connection ends after this response
	handedOff  bool

	// The watch for a client that hangs up during a long handler.
	wmu       sync.Mutex
	wcond     sync.Cond
	inHandler bool
	watching  bool
	watched   bool // the watch ran (and moved the read deadline)
	gone      bool // the client hung up during the handler
	cancelReq context.CancelFunc
	timer     *time.Timer
	armed     bool      // the timer is set (it is not set again for every request)
	since     time.Time // when the running handler started
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{s: s, nc: nc, remote: nc.RemoteAddr().String(), accepted: time.Now()}
	c.ph, _ = s.Handler.(PreparedHandler)
	c.cr.c = c
	c.br = bufio.NewReaderSize(&c.cr, readBufSize)
	c.wcond.L = &c.wmu
	c.ctx = context.WithValue(context.Background(), http.LocalAddrContextKey, nc.LocalAddr())
	c.state.Store(stateActive)
	return c
}

// connReader reads the connection, first giving back the byte the watch
// may have read during a handler (a pipelined request's first).
type connReader struct {
	c       *conn
	hasByte bool
	b       [1]byte
}

func (r *connReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if r.hasByte {
		p[0] = r.b[0]
		r.hasByte = false
		return 1, nil
	}
	return r.c.nc.Read(p)
}

func (c *conn) serve() {
	defer func() {
		c.wmu.Lock()
		if c.timer != nil {
			c.timer.Stop()
		}
		c.wmu.Unlock()
		if !c.handedOff {
			_ = c.nc.Close()
		}
		c.s.forget(c)
	}()
	for {
		if c.s.closing.Load() || !c.state.CompareAndSwap(stateActive, stateIdle) {
			return
		}
		if c.served == 0 {
			// A new connection has the header timeout for its first
			// request, from the moment it was accepted (as net/http; the
			// idle timeout when shorter): one that sends nothing is not
			// kept for the idle timeout.
			_ = c.nc.SetReadDeadline(c.accepted.Add(min(c.s.readHeaderTimeout(), c.s.idleTimeout())))
		} else {
			c.setIdleDeadline()
		}
		if _, err := c.br.Peek(1); err != nil {
			return
		}
		if !c.state.CompareAndSwap(stateIdle, stateActive) {
			return // closed by Shutdown as the request arrived
		}
		ok, err := c.readRequest()
		if err != nil {
			return
		}
		if !ok {
			c.handOff()
			return
		}
		c.served++
		c.serveRequest()
		if c.closeAfter {
			return
		}
	}
}

// setIdleDeadline sets the read deadline for the wait for the next
// request. It is set idle+slack ahead, and again only once it is older
// than slack (a tenth of the idle timeout, at most a second): a syscall
// saved on most requests, and an idle connection is closed between
// IdleTimeout and IdleTimeout+slack after its last request.
func (c *conn) setIdleDeadline() {
	idle := c.s.idleTimeout()
	slack := min(idle/10, time.Second)
	now := time.Now()
	if !c.idleSet.IsZero() && now.Sub(c.idleSet) < slack {
		return
	}
	c.idleSet = now
	_ = c.nc.SetReadDeadline(now.Add(idle + slack))
}

// handOff gives the connection, with what was read of it, to net/http.
func (c *conn) handOff() {
	_ = c.nc.SetReadDeadline(time.Time{})
	if c.s.give(&handedConn{Conn: c.nc, c: c}) {
		c.handedOff = true
	}
}

var crlfcrlf = []byte("\r\n\r\n")

// readRequest reads one request's header block into c.req. ok is false
// when the request is not one for this loop (the connection is then
// handed off, nothing consumed); err when the connection failed or timed
// out.
func (c *conn) readRequest() (ok bool, err error) {
	first, _ := c.br.Peek(1)
	if first[0] != 'G' && first[0] != 'H' {
		return false, nil // not GET or HEAD: no need to wait for the rest
	}
	deadline := false
	for {
		buf, _ := c.br.Peek(c.br.Buffered())
		end := bytes.Index(buf, crlfcrlf)
		if end >= 0 {
			buf = buf[:end+4]
		}
		if bareLF(buf) {
			return false, nil // net/http takes those; the loop would wait for a CRLF
		}
		if end >= 0 {
			block := buf
			if !parseRequest(block, &c.req) {
				c.req = http.Request{}
				return false, nil
			}
			_, _ = c.br.Discard(len(block))
			c.req.RemoteAddr = c.remote
			return true, nil
		}
		if c.br.Buffered() >= readBufSize {
			return false, nil // a larger header block than the loop takes
		}
		if !deadline && c.served > 0 { // the first request's runs from the accept
			deadline = true
			c.idleSet = time.Time{}
			_ = c.nc.SetReadDeadline(time.Now().Add(c.s.readHeaderTimeout()))
		}
		if _, err := c.br.Peek(c.br.Buffered() + 1); err != nil {
			return false, err
		}
	}
}

// bareLF reports a line feed without a carriage return before it.
func bareLF(b []byte) bool {
	for i := bytes.IndexByte(b, '\n'); i >= 0; {
		if i == 0 || b[i-1] != '\r' {
			return true
		}
		j := bytes.IndexByte(b[i+1:], '\n')
		if j < 0 {
			return false
		}
		i += 1 + j
	}
	return false
}

// serveRequest serves c.req: from a prepared response when the handler
// has one (PreparedHandler), else by the handler, with a request of its
// own (the one copy) whose context ends when the handler returns or the
// client hangs up.
func (c *conn) serveRequest() {
	if c.hdr == nil {
		c.hdr = make(http.Header, 8)
	}
	w := &c.resp
	*w = response{c: c, header: c.hdr, cl: -1, head: c.req.Method == http.MethodHead}
	if c.req.Close || c.s.closing.Load() {
		c.closeAfter = true
	}
	served, aborted := false, false
	if c.ph != nil {
		served, aborted = c.runPrepared(w)
	}
	var cancel context.CancelFunc
	if !served {
		var ctx context.Context
		ctx, cancel = context.WithCancel(c.ctx)
		req := c.req.WithContext(ctx)
		c.startWatch(cancel)
		aborted = c.runHandler(w, req)
		c.stopWatch()
		if c.gone {
			c.closeAfter = true
		}
	}
	if aborted {
		c.closeAfter = true
	} else {
		w.finish()
	}
	if cancel != nil {
		cancel()
	}
	// The request and the response's state are let go of; the header map
	// is used again (a handler must not touch the response once it has
	// returned, as with net/http), unless it grew large.
	c.req = http.Request{}
	c.resp = response{}
	if len(c.hdr) > 32 {
		c.hdr = nil
	} else {
		clear(c.hdr)
	}
	if len(c.body) > 0 || cap(c.body) > outLimit {
		c.body = nil
	}
	if cap(c.out) > 256<<10 {
		c.out = nil
	}
}

// runPrepared offers the request to the PreparedHandler; aborted if it
// panicked (as for runHandler).
func (c *conn) runPrepared(w *response) (served, aborted bool) {
	defer func() {
		if p := recover(); p != nil {
			served, aborted = true, true
			if p != http.ErrAbortHandler {
				c.s.logger().Error("http: panic serving "+c.remote, "panic", p, "stack", string(debug.Stack()))
			}
		}
	}()
	return c.ph.ServePrepared(w, &c.req), false
}

// runHandler runs the handler; true if it panicked (http.ErrAbortHandler
// or another panic, which is logged): the response is then cut off.
func (c *conn) runHandler(w *response, req *http.Request) (aborted bool) {
	defer func() {
		if p := recover(); p != nil {
			aborted = true
			if p != http.ErrAbortHandler {
				c.s.logger().Error("http: panic serving "+c.remote, "panic", p, "stack", string(debug.Stack()))
			}
		}
	}()
	c.s.Handler.ServeHTTP(w, req)
	return false
}

// startWatch notes that a handler runs. The timer that starts the watch is
// set only when it is not set already: resetting a timer for every request
// cost more than the rest of the watch. When it fires, tick starts the
// watch for a handler that has run watchAfter, sets itself again for one
// that has run less, and goes quiet when no handler runs.
func (c *conn) startWatch(cancel context.CancelFunc) {
	c.wmu.Lock()
	c.inHandler = true
	c.cancelReq = cancel
	c.since = time.Now()
	if !c.armed {
		c.armed = true
		if c.timer == nil {
			c.timer = time.AfterFunc(watchAfter, c.tick)
		} else {
			c.timer.Reset(watchAfter)
		}
	}
	c.wmu.Unlock()
}

func (c *conn) tick() {
	c.wmu.Lock()
	if !c.inHandler {
		c.armed = false
		c.wmu.Unlock()
		return
	}
	if left := watchAfter - time.Since(c.since); left > 0 {
		c.timer.Reset(left)
		c.wmu.Unlock()
		return
	}
	c.armed = false // the next handler sets it again
	c.wmu.Unlock()
	c.watch()
}

// watch reads the connection while a handler runs long: the read ends
// with the client hanging up (the request's context is then cancelled),
// with a pipelined request's first byte (kept for later), or when
// stopWatch cuts it short.
func (c *conn) watch() {
	c.wmu.Lock()
	if !c.inHandler || c.watching {
		c.wmu.Unlock()
		return
	}
	c.watching, c.watched = true, true
	_ = c.nc.SetReadDeadline(time.Time{})
	c.wmu.Unlock()
	n, err := c.nc.Read(c.cr.b[:])
	c.wmu.Lock()
	if n == 1 {
		c.cr.hasByte = true
	}
	var ne net.Error
	if err != nil && c.inHandler && !(errors.As(err, &ne) && ne.Timeout()) {
		c.cancelReq()
		c.gone = true
	}
	c.watching = false
	c.wcond.Broadcast()
	c.wmu.Unlock()
}

func (c *conn) stopWatch() {
	c.wmu.Lock()
	c.inHandler = false
	if c.watched {
		c.watched = false
		c.idleSet = time.Time{}
	}
	if c.watching {
		_ = c.nc.SetReadDeadline(aLongTimeAgo)
		for c.watching {
			c.wcond.Wait()
		}
	}
	c.wmu.Unlock()
}

// put queues p for the connection, writing when enough has gathered; a
// large p goes out with what is queued in one writev, without a copy.
func (c *conn) put(p []byte) error {
	if len(c.out)+len(p) <= outLimit {
		c.out = append(c.out, p...)
		return nil
	}
	if len(c.out) == 0 {
		_, err := c.nc.Write(p)
		return err
	}
	c.iov[0], c.iov[1] = c.out, p
	c.bufs = c.iov[:]
	_, err := c.bufs.WriteTo(c.nc)
	c.iov[0], c.iov[1] = nil, nil
	c.out = c.out[:0]
	return err
}

// flush writes what is queued.
func (c *conn) flush() error {
	if len(c.out) == 0 {
		return nil
	}
	_, err := c.nc.Write(c.out)
	c.out = c.out[:0]
	return err
}

// handedConn is a connection given to net/http: it reads first what the
// loop had buffered.
type handedConn struct {
	net.Conn
	c *conn
}

func (h *handedConn) Read(p []byte) (int, error) {
	if h.c.br.Buffered() > 0 {
		return h.c.br.Read(p)
	}
	return h.c.cr.Read(p)
}

// ReadFrom keeps sendfile for net/http's file responses.
func (h *handedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := h.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(writerOnly{h.Conn}, r)
}

// CloseWrite keeps net/http's graceful close.
func (h *handedConn) CloseWrite() error {
	if cw, ok := h.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

type writerOnly struct{ io.Writer }
