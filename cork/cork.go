// Package cork sends a complete in-memory response in one write(2):
// connections are wrapped so that a handler's headers and body can be held
// back and released together (see Listener, ConnContext, Wrap and Holder).
package cork

import (
	"context"
	"io"
	"net"
	"net/http"
)

// Go's net/http writes a response through a fixed 4 KB connection buffer,
// so headers and a body of more than about 4 KB leave in two write(2)
// calls: on loopback and in containers each is a full pass through the TCP
// stack, and the warm metadata path spends most of its CPU there. A warm
// document is complete in memory, so its response can be collected and
// sent with one write: the connection is "corked" while the handler writes
// and flushes it, then released. Everything else passes straight through.

// Listener wraps accepted connections in corkConns.
type Listener struct{ net.Listener }

func (l Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &corkConn{Conn: c}, nil
}

// corkConn is a connection whose writes can be held back and coalesced.
// net/http writes a connection from one goroutine at a time.
type corkConn struct {
	net.Conn
	corked  bool
	pending []byte
}

func (c *corkConn) Write(p []byte) (int, error) {
	if !c.corked {
		return c.Conn.Write(p)
	}
	c.pending = append(c.pending, p...)
	return len(p), nil
}

// release sends what was held back, in one write.
func (c *corkConn) release() error {
	c.corked = false
	if len(c.pending) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.pending)
	if cap(c.pending) > 256<<10 {
		c.pending = nil // do not keep an unusually large buffer per connection
	} else {
		c.pending = c.pending[:0]
	}
	return err
}

// ReadFrom keeps sendfile for files (net/http looks for io.ReaderFrom).
func (c *corkConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok && !c.corked {
		return rf.ReadFrom(r)
	}
	return io.Copy(writerOnly{c}, r)
}

// CloseWrite keeps net/http's graceful close (TCP half-close).
func (c *corkConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

type writerOnly struct{ io.Writer }

type corkKey struct{}

// ConnContext is http.Server.ConnContext: it makes the connection reachable
// from its requests.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if cc, ok := c.(*corkConn); ok {
		return context.WithValue(ctx, corkKey{}, cc)
	}
	return ctx
}

// Holder is a response writer that can hold a complete response back
// and send it in one write: Hold(n), for a body of n bytes, corks the
// connection and returns the function that flushes and releases it (nil:
// the body is too small or too large to be worth it, or the connection is
// not corkable). The server installs one (Wrap); the core finds it
// through the response writers' Unwrap chain.
type Holder interface {
	Hold(n int) (release func())
}

// Wrap returns w as a Holder when r came in on a corked connection (see
// Listener and ConnContext), else w itself.
func Wrap(w http.ResponseWriter, r *http.Request) http.ResponseWriter {
	cc, _ := r.Context().Value(corkKey{}).(*corkConn)
	if cc == nil {
		return w
	}
	return &writer{ResponseWriter: w, cc: cc}
}

// writer is a response writer on a corked connection.
type writer struct {
	http.ResponseWriter
	cc *corkConn
}

var _ Holder = (*writer)(nil)

func (w *writer) Hold(n int) func() {
	if n < 3<<10 || n > 1<<20 {
		return nil
	}
	w.cc.corked = true
	return func() {
		_ = http.NewResponseController(w.ResponseWriter).Flush()
		_ = w.cc.release()
	}
}

// Unwrap lets http.ResponseController reach net/http's writer (deadlines).
func (w *writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush flushes net/http's writer.
func (w *writer) Flush() { _ = http.NewResponseController(w.ResponseWriter).Flush() }

// ReadFrom keeps sendfile for files.
func (w *writer) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(writerOnly{w.ResponseWriter}, r)
}
