// Package h1 is a small HTTP/1.1 server loop for the requests that make up
// nearly all of a package mirror's traffic: GET and HEAD without a body.
// It runs the same http.Handler as net/http would and hands every other
// connection, at its first request the loop does not take, to a net/http
// server (Server.Fallback), which then keeps it.
//
// Why not net/http alone: a warm metadata hit is a few microseconds of the
// proxy's own work, and the rest is the server around it. Per request,
// net/http starts a background read (a goroutine wake and an extra read(2)
// that returns EAGAIN), cancels it when the handler returns, and writes
// through a 4 KB buffer. This loop reads the request, runs the handler, and
// sends headers and body with one write (writev for a large body, sendfile
// for a file), and watches for a client that hangs up only when a handler
// runs long (see watchAfter).
//
// What it takes: HTTP/1.1 GET and HEAD in origin form with a Host, no
// Content-Length, Transfer-Encoding, Expect or Upgrade, header block within
// the read buffer, CRLF line ends and valid field names and values. All
// else (uploads, HTTP/1.0, anything malformed, oversized or unusual) goes
// to net/http unread, so its limits, errors and behaviour stay as they are.
package h1

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Server serves HTTP/1.1 connections from a listener.
type Server struct {
	Handler http.Handler
	// Fallback serves the connections the loop hands over; its Handler
	// should be the same. Its Serve runs on an internal listener.
	Fallback *http.Server
	// IdleTimeout bounds the wait for the next request on a connection;
	// ReadHeaderTimeout the time from its first byte to its last header.
	IdleTimeout       time.Duration
	ReadHeaderTimeout time.Duration
	// Logger gets handler panics (other than http.ErrAbortHandler).
	Logger *slog.Logger

	mu       sync.Mutex
	conns    map[*conn]struct{}
	listener net.Listener
	handoff  *handoff
	closing  atomic.Bool
}

// PreparedHandler is a Handler that can answer some requests from a
// response it prepared earlier (see WritePrepared), with nothing to wait
// for but the client. The loop calls ServePrepared first, without what it
// sets up for a handler that may run long: the request has no context of
// its own (r.Context() is the background), its storage is used again for
// the next request (so neither r nor anything of it may be kept past the
// return), and a client that hangs up is not watched for. It returns
// false, having written nothing, to leave the request to ServeHTTP.
type PreparedHandler interface {
	http.Handler
	ServePrepared(w http.ResponseWriter, r *http.Request) bool
}

const (
	defaultIdle       = 120 * time.Second
	defaultReadHeader = 30 * time.Second
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = http.ErrServerClosed

// Serve accepts connections on l until Shutdown or Close. It also runs the
// fallback server.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.conns == nil {
		s.conns = map[*conn]struct{}{}
	}
	s.listener = l
	s.handoff = &handoff{ch: make(chan net.Conn), closed: make(chan struct{}), addr: l.Addr()}
	ho := s.handoff
	s.mu.Unlock()
	if s.closing.Load() {
		return ErrServerClosed
	}
	go func() { _ = s.Fallback.Serve(ho) }()
	defer ho.Close()

	var delay time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			var ne interface{ Temporary() bool }
			if errors.As(err, &ne) && ne.Temporary() {
				// Temporary (out of file descriptors: EMFILE, ENFILE; a
				// connection reset before it was accepted): back off and
				// accept again, as net/http does.
				if delay == 0 {
					delay = 5 * time.Millisecond
				} else if delay *= 2; delay > time.Second {
					delay = time.Second
				}
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		c := newConn(s, nc)
		s.mu.Lock()
		if s.closing.Load() {
			s.mu.Unlock()
			_ = nc.Close()
			return ErrServerClosed
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		go c.serve()
	}
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// give passes a connection to the fallback server; false if it is closed.
func (s *Server) give(c net.Conn) bool {
	select {
	case s.handoff.ch <- c:
		return true
	case <-s.handoff.closed:
		return false
	}
}

// Shutdown stops accepting, closes idle connections, lets requests in
// progress finish (their connections then close), and shuts the fallback
// server down; it returns when all are done or ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.mu.Lock()
	if s.listener != nil {
		_ = s.listener.Close()
	}
	s.mu.Unlock()
	fb := make(chan error, 1)
	go func() { fb <- s.Fallback.Shutdown(ctx) }()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if s.closeIdle() == 0 {
			break
		}
		select {
		case <-ctx.Done():
			<-fb
			return ctx.Err()
		case <-t.C:
		}
	}
	s.mu.Lock()
	if s.handoff != nil {
		s.handoff.Close()
	}
	s.mu.Unlock()
	return <-fb
}

// closeIdle closes the connections waiting for a request and reports how
// many connections are left.
func (s *Server) closeIdle() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.state.CompareAndSwap(stateIdle, stateClosed) {
			_ = c.nc.Close()
		}
	}
	return len(s.conns)
}

// Close closes the listener and every connection at once.
func (s *Server) Close() error {
	s.closing.Store(true)
	s.mu.Lock()
	if s.listener != nil {
		_ = s.listener.Close()
	}
	for c := range s.conns {
		c.state.Store(stateClosed)
		_ = c.nc.Close()
	}
	if s.handoff != nil {
		s.handoff.Close()
	}
	s.mu.Unlock()
	return s.Fallback.Close()
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func (s *Server) idleTimeout() time.Duration {
	if s.IdleTimeout > 0 {
		return s.IdleTimeout
	}
	return defaultIdle
}

func (s *Server) readHeaderTimeout() time.Duration {
	if s.ReadHeaderTimeout > 0 {
		return s.ReadHeaderTimeout
	}
	return defaultReadHeader
}

// handoff is the listener the fallback server accepts handed-over
// connections from.
type handoff struct {
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
	addr   net.Addr
}

func (h *handoff) Accept() (net.Conn, error) {
	select {
	case c := <-h.ch:
		return c, nil
	case <-h.closed:
		return nil, net.ErrClosed
	}
}

func (h *handoff) Close() error {
	h.once.Do(func() { close(h.closed) })
	return nil
}

func (h *handoff) Addr() net.Addr { return h.addr }
