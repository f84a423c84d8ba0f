package proxy

import (
	"io"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/mirror-proxy/mirror-proxy/hosted"
	"github.com/mirror-proxy/mirror-proxy/httpx"
	"github.com/mirror-proxy/mirror-proxy/mirror"
	"github.com/mirror-proxy/mirror-proxy/storage"
)

// Router registers an ecosystem's routes under one mount prefix. Paths
// use net/http's {name} wildcards, read with r.PathValue.
type Router struct {
	s      *Server
	prefix string
}

var _ mirror.Router = Router{}

func (s *Server) router(prefix string) mirror.Router { return Router{s: s, prefix: prefix} }

// Read registers a GET route that also answers HEAD.
func (rt Router) Read(path string, h httpx.Handler) {
	rt.Handle(http.MethodGet, path, h)
	rt.Handle(http.MethodHead, path, h)
}

// Handle registers a route that reads (a read token suffices).
func (rt Router) Handle(method, path string, h httpx.Handler) {
	rt.add(method, path, h, false)
}

// Write registers a route that writes: it needs a token with the write
// scope.
func (rt Router) Write(method, path string, h httpx.Handler) {
	rt.add(method, path, h, true)
}

func (rt Router) add(method, path string, h httpx.Handler, write bool) {
	route, rest := echoPath(path)
	route = rt.prefix + route
	name := mirrorOfRoute(route)
	rt.s.e.Add(method, route, rt.s.adapt(route, rest, name, write, rt.s.authorizer(name, write), h))
}

// echoPath turns {name} wildcards into echo's :name, and a final
// {name...} (the rest of the path, slashes included) into echo's *, whose
// value the handler reads as name.
func echoPath(p string) (route, rest string) {
	var b strings.Builder
	for {
		i := strings.IndexByte(p, '{')
		if i < 0 {
			b.WriteString(p)
			return b.String(), rest
		}
		j := strings.IndexByte(p[i:], '}')
		if name, ok := strings.CutSuffix(p[i+1:i+j], "..."); ok {
			b.WriteString(p[:i] + "*")
			rest = name
		} else {
			b.WriteString(p[:i] + ":" + p[i+1:i+j])
		}
		p = p[i+j+1:]
	}
}

// adapt runs a httpx.Handler of route (of mirror mirrorName; write: it
// writes) under echo once the request is authorized (auth, when not nil);
// refusals and writes are audit events (audit.go): path parameters become path values
// (echo's * as rest, the name of a {rest...} wildcard), and an
// aborted response (abort) is recorded for the request log before the
// connection is cut.
func (s *Server) adapt(route, rest, mirrorName string, write bool, auth func(echo.Context) error, h httpx.Handler) echo.HandlerFunc {
	return func(c echo.Context) error {
		if auth != nil {
			if err := auth(c); err != nil {
				s.auditAuth(c, mirrorName, write, err)
				return err
			}
		} else if rec, ok := c.Response().Writer.(*recorder); ok {
			rec.route = route // a route that needs no token: its responses may be replayed
		}
		r := c.Request()
		names, values := c.ParamNames(), c.ParamValues()
		for i, n := range names {
			if i < len(values) {
				if n == "*" && rest != "" {
					n = rest // {rest...}
				}
				r.SetPathValue(n, values[i])
			}
		}
		defer func() {
			if p := recover(); p != nil {
				if a, ok := p.(*httpx.Aborted); ok {
					c.Set(abortKey, a)
					panic(http.ErrAbortHandler)
				}
				panic(p)
			}
		}()
		if write {
			return s.audited(c, mirrorName, func(r *http.Request) error { return h(responseWriter{c.Response()}, r) })
		}
		return h(responseWriter{c.Response()}, r)
	}
}

// responseWriter is echo's response with ReadFrom, the one thing echo
// hides that it cannot do itself (the server's other writer behaviours,
// the replay recorder and cork's Holder, are found through echo's
// Unwrap): echo.Response has no ReadFrom, so io.Copy into it
// (http.ServeContent's body copy) read a file through a buffer and wrote
// it piece by piece; with ReadFrom, the server
// below sends it with sendfile(2) (h1 and net/http both do), and echo
// still counts the status and the bytes for the logs and metrics. (One
// pointer: passing it as an interface allocates nothing.)
type responseWriter struct{ *echo.Response }

func (w responseWriter) ReadFrom(src io.Reader) (int64, error) {
	if !w.Committed {
		w.WriteHeader(http.StatusOK)
	}
	rf, ok := w.Writer.(io.ReaderFrom)
	if !ok {
		return io.Copy(struct{ io.Writer }{w.Response}, src)
	}
	n, err := rf.ReadFrom(src)
	w.Size += n
	return n, err
}

// abortKey is where the request log finds an aborted response's reason.
const abortKey = "mirror.abort"

// newRepo opens the hosted repository of mirror m.
func (s *Server) newRepo(m Mirror) *hosted.Repo {
	return s.core.NewRepo(storage.Join(s.opts.ArtifactPrefix, m.Name), m.TTL)
}
