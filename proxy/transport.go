package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/mirror-proxy/mirror-proxy/cork"
	"github.com/mirror-proxy/mirror-proxy/h1"
)

// The transport: how requests reach the router. One switch (Options.StdHTTP,
// HTTP_SERVER) chooses between h1's loop for GET and HEAD in front of
// net/http (the default: warm documents are replayed from replay.go without
// routing) and net/http alone (its connections corked, so that a complete
// document still leaves in one write: package cork). Either way every
// request that is not replayed goes through ServeHTTP and the router, and
// every request, replayed or not, is logged by logRequest.

// ServeHTTP serves a request through echo. On the h1 loop (the only
// server whose responses can be replayed), which offered the request to
// ServePrepared first, it keeps the response when its handler marks it
// replayable (see replay.go).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, ok := w.(preparedWriter); ok {
		if key, ok := replayKeyOf(r, s.replayIgnored); ok {
			rec := &recorder{ResponseWriter: w}
			s.route(rec, r)
			if rp := rec.replay(); rp != nil {
				s.replays.put(key, rp)
			}
			return
		}
	}
	s.route(cork.Wrap(w, r), r)
}

// route serves a request through echo: a dated snapshot's path is
// rewritten to the mirror's own route first (routing needs it).
func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	if strings.Contains(r.URL.Path, "/@") && knownMethods[r.Method] {
		if sr, ok := s.snapshotRequest(r); ok {
			r = sr
		}
	}
	s.e.ServeHTTP(w, r)
}

// Serve runs the server on l until ctx is cancelled, then shuts down
// gracefully: readiness fails, new connections are refused, in-flight
// requests and downloads get up to grace to finish; downloads still
// running after that are cancelled and commit nothing.
func (s *Server) Serve(ctx context.Context, l net.Listener, grace time.Duration) error {
	hs := &http.Server{
		Handler:           s,
		ConnContext:       cork.ConnContext,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.opts.Logger.Handler(), slog.LevelWarn),
	}
	// The server: h1's loop for GET and HEAD, which hands every other
	// connection to hs; or hs alone, its writes corked.
	serve, shutdown, closeAll := func() error { return hs.Serve(cork.Listener{Listener: l}) }, hs.Shutdown, hs.Close
	if !s.opts.StdHTTP {
		fast := &h1.Server{Handler: s, Fallback: hs, ReadHeaderTimeout: hs.ReadHeaderTimeout,
			IdleTimeout: hs.IdleTimeout, Logger: s.opts.Logger}
		serve, shutdown, closeAll = func() error { return fast.Serve(l) }, fast.Shutdown, fast.Close
	}
	errc := make(chan error, 1)
	go func() { errc <- serve() }()
	// Whichever way serving ends, the connections are shut down and the
	// core is stopped and waited for (downloads commit or are cancelled).
	var serveErr error
	select {
	case serveErr = <-errc:
		s.opts.Logger.Error("the server stopped accepting connections", "err", serveErr)
	case <-ctx.Done():
	}
	s.opts.Logger.Info("shutting down", "grace", grace.String())
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := shutdown(sctx)
	done := make(chan struct{})
	go func() { s.core.Wait(); close(done) }()
	select {
	case <-done:
	case <-sctx.Done():
		s.opts.Logger.Warn("grace period over; cancelling downloads still running (nothing partial is stored)")
	}
	s.core.Stop()
	s.core.Wait()
	// The audit events of the last requests are written before exit.
	actx, acancel := context.WithTimeout(context.Background(), 30*time.Second)
	_ = s.opts.Audit.Close(actx)
	acancel()
	if errors.Is(err, context.DeadlineExceeded) {
		_ = closeAll()
	}
	return serveErr
}
