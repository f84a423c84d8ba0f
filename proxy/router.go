package proxy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// Handler serves one request with net/http's types; an error it returns
// becomes the response (handleError), unless the response has started.
type Handler func(w http.ResponseWriter, r *http.Request) error

// Router registers an ecosystem's routes under one mount prefix. Paths
// use net/http's {name} wildcards, read with r.PathValue.
type Router struct {
	s      *Server
	prefix string
}

func (s *Server) router(prefix string) Router { return Router{s: s, prefix: prefix} }

// Read registers a GET route that also answers HEAD.
func (rt Router) Read(path string, h Handler) {
	rt.Handle(http.MethodGet, path, h)
	rt.Handle(http.MethodHead, path, h)
}

// Handle registers a route that reads (a read token suffices).
func (rt Router) Handle(method, path string, h Handler) {
	rt.s.e.Add(method, rt.prefix+echoPath(path), rt.s.adapt(h))
}

// Write registers a route that writes: it needs a token with the write
// scope.
func (rt Router) Write(method, path string, h Handler) {
	rt.Handle(method, path, h)
	rt.s.writeRoutes[method+" "+rt.prefix+echoPath(path)] = true
}

// echoPath turns {name} wildcards into echo's :name.
func echoPath(p string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(p, '{')
		if i < 0 {
			b.WriteString(p)
			return b.String()
		}
		j := strings.IndexByte(p[i:], '}')
		b.WriteString(p[:i] + ":" + p[i+1:i+j])
		p = p[i+j+1:]
	}
}

// adapt runs a Handler under echo: path parameters become path values,
// and an aborted response (abort) is recorded for the request log before
// the connection is cut.
func (s *Server) adapt(h Handler) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		names, values := c.ParamNames(), c.ParamValues()
		for i, n := range names {
			if i < len(values) {
				r.SetPathValue(n, values[i])
			}
		}
		defer func() {
			if p := recover(); p != nil {
				if a, ok := p.(*Aborted); ok {
					c.Set(abortKey, a)
					panic(http.ErrAbortHandler)
				}
				panic(p)
			}
		}()
		return h(c.Response(), r)
	}
}

// HTTPError is an answer with a status and a message, which handlers
// return as errors.
type HTTPError struct {
	Code int
	Msg  string
}

func (e *HTTPError) Error() string { return e.Msg }

func NewError(code int, msg string) error { return &HTTPError{Code: code, Msg: msg} }

func Redirect(w http.ResponseWriter, r *http.Request, code int, url string) error {
	http.Redirect(w, r, url, code)
	return nil
}

func WriteJSON(w http.ResponseWriter, code int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return WriteBlob(w, code, "application/json", append(b, '\n'))
}

func WriteText(w http.ResponseWriter, code int, s string) error {
	return WriteBlob(w, code, "text/plain; charset=utf-8", []byte(s))
}

func WriteBlob(w http.ResponseWriter, code int, ctype string, b []byte) error {
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Content-Length", fmt.Sprint(len(b)))
	w.WriteHeader(code)
	_, err := w.Write(b)
	return err
}

func NoContent(w http.ResponseWriter, code int) error {
	w.WriteHeader(code)
	return nil
}
