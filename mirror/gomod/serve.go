package gomod

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/mirror-proxy/mirror-proxy/fetch"
	"github.com/mirror-proxy/mirror-proxy/httpx"
	"github.com/mirror-proxy/mirror-proxy/mirror"
	"github.com/mirror-proxy/mirror-proxy/storage"
)

func init() {
	mirror.Register(mirror.Type{
		Client:     func(u string) string { return "export GOPROXY=" + u },
		Name:       "go",
		DefaultURL: "https://proxy.golang.org",
		// A module's list grows with each release; files never change.
		DefaultTTL: 5 * time.Minute,
		Options: func(opts map[string]json.RawMessage) error {
			_, err := ParseOptions(opts)
			return err
		},
		Hosts: true,
		New:   newMirror,
	})
}

// goMirror serves one Go module proxy under /N/:
//
//	/N/<module>/@v/list, /N/<module>/@latest        revalidated, served stale
//	/N/<module>/@v/<version>.info                    kept as metadata (never changes)
//	/N/<module>/@v/<version>.mod|.zip                immutable files, verified against
//	                                                 the checksum database before
//	                                                 they are stored
//	/N/sumdb/<name>/supported|latest|lookup/...|tile/...
//	                                                 the checksum databases, proxied
type goMirror struct {
	env     *mirror.Env
	m       fetch.Mirror
	opts    Options
	dbs     []*checksumDB
	derived fetch.Derived // lists filtered by the policies
}

var _ mirror.Ecosystem = (*goMirror)(nil)

func newMirror(env *mirror.Env) mirror.Ecosystem {
	gm := &goMirror{env: env, m: env.Mirror}
	gm.opts, _ = ParseOptions(env.Mirror.Options) // checked with the configuration
	for _, db := range gm.opts.SumDB {
		gm.dbs = append(gm.dbs, newChecksumDB(gm, db))
	}
	return gm
}

// Routes registers the mirror's routes. Module paths have slashes, so one
// wildcard route reads them; a module path's first element has a dot, so
// "sumdb" is never one.
func (gm *goMirror) Routes(rt mirror.Router) {
	rt.Read("/sumdb/{db}/{rest...}", textErrors(gm.sumdbRoute))
	rt.Read("/{rest...}", textErrors(gm.serve))
	rt.Write(http.MethodPut, "/{rest...}", gm.publish)
}

var (
	hvJSON = []string{"application/json"}
	hvZip  = []string{"application/zip"}
)

func (gm *goMirror) serve(w http.ResponseWriter, r *http.Request) error {
	req, err := ParseRequest(r.PathValue("rest"))
	if err != nil {
		// The protocol's "not found": with GOPROXY=<this>,direct the go
		// command moves on.
		return httpx.NewError(http.StatusNotFound, err.Error())
	}
	if gm.env.Repo != nil {
		owner, err := gm.owner(r.Context(), req.Escaped)
		if err != nil {
			return err
		}
		switch {
		case owner == req.Escaped:
			return gm.serveHosted(w, r, req)
		case owner != "":
			return httpx.NewError(http.StatusNotFound, fmt.Sprintf("%s is below a module published here, and is not one", req.Module))
		case gm.m.URL == "":
			return httpx.NewError(http.StatusNotFound, req.Module+" is not published here")
		}
	}
	filters := gm.filters(r, req.Module)
	switch req.Kind {
	case "list":
		res, err := gm.meta(r.Context(), req)
		if err != nil {
			return err
		}
		if filters {
			return gm.filteredList(w, r, req, res)
		}
		gm.replayable(w, req, res)
		return gm.env.Core.ServeMeta(w, r, res, hvText)
	case "latest":
		if filters {
			return gm.filteredLatest(w, r, req)
		}
		res, err := gm.meta(r.Context(), req)
		if err != nil {
			return err
		}
		gm.replayable(w, req, res)
		return gm.env.Core.ServeMeta(w, r, res, hvJSON)
	}
	if filters {
		if err := gm.heldBack(w, r, req); err != nil {
			return err
		}
	}
	if req.Kind == "info" {
		res, err := gm.info(r.Context(), req)
		if err != nil {
			return err
		}
		if !filters {
			gm.replayable(w, req, res)
		}
		return gm.env.Core.ServeMeta(w, r, res, hvJSON)
	}
	key := storage.Join(gm.env.DistPrefix, gm.m.Name, req.Path())
	w.Header()["Content-Type"] = map[string][]string{"mod": hvText, "zip": hvZip}[req.Kind]
	return gm.env.Core.ServeFile(w, r, key, func(ctx context.Context) (fetch.FileSource, error) {
		return fetch.FileSource{URL: gm.m.URL + "/" + req.Path(), Client: gm.env.Client, Check: gm.check(req)}, nil
	})
}

// replayable marks an unfiltered document response as one the server may
// send again while its stored copy is fresh (fetch.Replayable); a mirror
// that hosts asks its published names first, so it never is.
func (gm *goMirror) replayable(w http.ResponseWriter, req Request, res fetch.MetaResult) {
	if gm.env.Repo != nil {
		return
	}
	ttl := gm.m.TTL
	if req.Kind == "info" {
		ttl = infoTTL
	}
	fetch.Replayable(w, gm.env.MetaKey(req.Path()), ttl, res)
}

// meta is a list or @latest document: revalidated after the mirror's
// TTL, served stale when the upstream fails.
func (gm *goMirror) meta(ctx context.Context, req Request) (fetch.MetaResult, error) {
	key := gm.env.MetaKey(req.Path())
	return gm.env.Core.MetaOf(ctx, key, gm.m.TTL, func() *fetch.MetaSource {
		return &fetch.MetaSource{Key: key, URL: gm.m.URL + "/" + req.Path(), Client: gm.env.Client, TTL: gm.m.TTL,
			NotFoundTTL: gm.m.NotFoundTTL, Transform: validator(req)}
	})
}

// validator checks a list or @latest answer before it is stored.
func validator(req Request) func([]byte, *http.Response) ([]byte, error) {
	if req.Kind == "latest" {
		return func(b []byte, _ *http.Response) ([]byte, error) {
			var info struct{ Version string }
			if err := json.Unmarshal(b, &info); err != nil || info.Version == "" {
				return nil, fmt.Errorf("@latest of %s is not a version's info", req.Module)
			}
			return b, nil
		}
	}
	return nil
}

// textErrors answers h's errors as text/plain, which the go command shows
// its user ("server response: ..."); a JSON body it would not show.
func textErrors(h httpx.Handler) httpx.Handler {
	return func(w http.ResponseWriter, r *http.Request) error {
		tw := &tracked{ResponseWriter: w}
		err := h(tw, r)
		if err == nil || tw.started {
			return err
		}
		he := httpx.ErrorOf(err)
		if he.Code == 499 {
			return err
		}
		h := w.Header()
		for _, k := range []string{"Content-Length", "Etag", "Last-Modified", "Content-Encoding"} {
			h.Del(k)
		}
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(he.Code)
		_, _ = io.WriteString(w, he.Msg+"\n")
		return nil
	}
}

// tracked notes whether a response has started.
type tracked struct {
	http.ResponseWriter
	started bool
}

func (t *tracked) WriteHeader(code int) { t.started = true; t.ResponseWriter.WriteHeader(code) }
func (t *tracked) Write(b []byte) (int, error) {
	t.started = true
	return t.ResponseWriter.Write(b)
}
func (t *tracked) ReadFrom(r io.Reader) (int64, error) {
	t.started = true
	if rf, ok := t.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(t.ResponseWriter, r)
}
func (t *tracked) Unwrap() http.ResponseWriter { return t.ResponseWriter }
func (t *tracked) Flush() {
	t.started = true
	if f, ok := t.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
