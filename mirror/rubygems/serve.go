package rubygems

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mirror-proxy/mirror-proxy/fetch"
	"github.com/mirror-proxy/mirror-proxy/httpx"
	"github.com/mirror-proxy/mirror-proxy/mirror"
	"github.com/mirror-proxy/mirror-proxy/storage"
)

func init() {
	mirror.Register(mirror.Type{
		Client: func(u string) string {
			return "source \"" + u + "\"   # in the Gemfile\n# gem: gem sources --add " + u + "/"
		},
		Name:       "rubygems",
		DefaultURL: "https://rubygems.org",
		DefaultTTL: 5 * time.Minute,
		Hosts:      true,
		New:        newMirror,
	})
}

// gemsMirror serves one RubyGems repository under /N/:
//
//	/N/versions, /N/names                          the compact index (big: served stale while revalidated)
//	/N/info/<gem>                                  a gem's versions and checksums
//	/N/gems/<gem>-<version>[-<platform>].gem       verified against its /info checksum
//	/N/specs.4.8.gz, latest_specs.4.8.gz, prerelease_specs.4.8.gz
//	/N/quick/Marshal.4.8/<spec>.gemspec.rz         the legacy index, passed through
type gemsMirror struct {
	env     *mirror.Env
	m       fetch.Mirror
	derived fetch.Derived // /versions with the pushed gems' lines, filtered /info files
	over    overrides     // /versions lines of gems whose /info was filtered
	// etags are the MD5 ETags of stored index documents, by entry ID.
	etags     sync.Map
	etagCount atomic.Int64
}

var _ mirror.Ecosystem = (*gemsMirror)(nil)

func newMirror(env *mirror.Env) mirror.Ecosystem {
	return &gemsMirror{env: env, m: env.Mirror}
}

// Routes registers the mirror's routes.
func (gm *gemsMirror) Routes(rt mirror.Router) {
	rt.Read("/versions", gm.versions)
	rt.Write(http.MethodPost, "/api/v1/gems", gm.push)
	rt.Write(http.MethodDelete, "/api/v1/gems/yank", gm.yank)
	rt.Read("/names", gm.document("names", true))
	rt.Read("/info/{gem}", gm.info)
	rt.Read("/gems/{file}", gm.gem)
	for _, f := range []string{"specs.4.8.gz", "latest_specs.4.8.gz", "prerelease_specs.4.8.gz"} {
		rt.Read("/"+f, gm.document(f, true))
	}
	rt.Read("/quick/Marshal.4.8/{spec}", gm.quickSpec)
}

var (
	hvText   = []string{"text/plain; charset=utf-8"}
	hvBinary = []string{"application/octet-stream"}
)

func (gm *gemsMirror) meta(ctx context.Context, path string, big bool) (fetch.MetaResult, error) {
	key := gm.env.MetaKey(path)
	return gm.env.Core.MetaOf(ctx, key, gm.m.TTL, func() *fetch.MetaSource {
		return &fetch.MetaSource{Key: key, URL: gm.m.URL + "/" + path, Client: gm.env.Client, TTL: gm.m.TTL,
			NotFoundTTL: gm.m.NotFoundTTL, StaleWhileRevalidate: big}
	})
}

// document serves a whole-repository document as the upstream has it.
func (gm *gemsMirror) document(path string, big bool) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		res, err := gm.meta(r.Context(), path, big)
		if err != nil {
			return err
		}
		if path == "names" {
			return gm.serveIndexDoc(w, r, res)
		}
		return gm.env.Core.ServeMeta(w, r, res, hvBinary)
	}
}

// serveIndexDoc sends a compact index document as Bundler reads it: its
// ETag is the quoted MD5 of the whole document (what Bundler checks a
// download against), If-None-Match with it is a 304, and a Range request
// (Bundler asks for what follows the copy it has) is a 206 of that part.
func (gm *gemsMirror) serveIndexDoc(w http.ResponseWriter, r *http.Request, res fetch.MetaResult) error {
	body, err := gm.env.Core.PlainBody(res.Entry) // kept with the entry: not decompressed per request
	if err != nil {
		return err
	}
	etag, ok := gm.etags.Load(res.Entry.ID())
	if !ok {
		sum := md5.Sum(body)
		etag = `"` + hex.EncodeToString(sum[:]) + `"`
		if gm.etagCount.Add(1) > 100000 {
			gm.etags.Clear() // bounded: computed again when asked
			gm.etagCount.Store(0)
		}
		gm.etags.Store(res.Entry.ID(), etag)
	}
	if res.Stale {
		w.Header().Set("X-Mirror-Stale", "true")
	}
	return serveBytes(w, r, body, etag.(string))
}

// serveBytes sends body with etag, honouring If-None-Match and Range.
func serveBytes(w http.ResponseWriter, r *http.Request, body []byte, etag string) error {
	h := w.Header()
	h.Set("ETag", etag)
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	return nil
}

// infoMeta is a gem's /info file.
func (gm *gemsMirror) infoMeta(ctx context.Context, name string) (fetch.MetaResult, error) {
	key := gm.env.MetaKey("info/" + name)
	return gm.env.Core.MetaOf(ctx, key, gm.m.TTL, func() *fetch.MetaSource {
		return &fetch.MetaSource{Key: key, URL: gm.m.URL + "/info/" + name, Client: gm.env.Client, TTL: gm.m.TTL,
			NotFoundTTL: gm.m.NotFoundTTL, Transform: func(b []byte, _ *http.Response) ([]byte, error) {
				_, err := ParseInfo(b)
				return b, err
			}}
	})
}

func (gm *gemsMirror) info(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("gem")
	if !ValidName(name) {
		return httpx.NewError(http.StatusNotFound, "not a gem name")
	}
	if owned, err := gm.owned(r.Context(), name); err != nil || owned {
		if err != nil {
			return err
		}
		h, err := gm.hostedGem(r.Context(), name)
		if err != nil {
			return err
		}
		if h.Name != name {
			return httpx.NewError(http.StatusNotFound, name+" is pushed here as "+h.Name)
		}
		return httpx.WriteBlob(w, http.StatusOK, "text/plain; charset=utf-8", hostedInfo(h))
	} else if gm.m.URL == "" {
		return httpx.NewError(http.StatusNotFound, name+" is not pushed here")
	}
	res, err := gm.infoMeta(r.Context(), name)
	if err != nil {
		return err
	}
	if gm.filters(r, name) {
		f, err := gm.filterInfo(r, name, res)
		if err != nil {
			return err
		}
		return serveBytes(w, r, f.body, f.etag)
	}
	return gm.serveIndexDoc(w, r, res)
}

// gem serves a .gem: stored, or downloaded and verified against the
// checksum of its /info line.
func (gm *gemsMirror) gem(w http.ResponseWriter, r *http.Request) error {
	file := r.PathValue("file")
	names, err := NameCandidates(file)
	if err != nil {
		return httpx.NewError(http.StatusNotFound, err.Error())
	}
	for _, name := range names {
		if owned, err := gm.owned(r.Context(), name); err != nil || owned {
			if err != nil {
				return err
			}
			return gm.hostedGemFile(w, r, name, file)
		}
	}
	if gm.m.URL == "" {
		return httpx.NewError(http.StatusNotFound, file+" is not pushed here")
	}
	if err := gm.judgeFile(w, r, file, names); err != nil {
		return err
	}
	key := storage.Join(gm.env.DistPrefix, gm.m.Name, "gems", file)
	w.Header()["Content-Type"] = hvBinary
	return gm.env.Core.ServeFile(w, r, key, func(ctx context.Context) (fetch.FileSource, error) {
		var lastErr error = httpx.NewError(http.StatusNotFound, file+" is not a version any /info lists")
		for _, name := range names {
			res, err := gm.infoMeta(ctx, name)
			if httpx.IsNotFound(err) {
				continue
			}
			if err != nil {
				lastErr = err
				continue
			}
			lines, err := fetch.Parsed(gm.env.Core, res.Entry, ParseInfo)
			if err != nil {
				return fetch.FileSource{}, &httpx.UpstreamError{Status: http.StatusBadGateway, Msg: fmt.Sprintf("stored /info/%s: %v", name, err)}
			}
			l, ok := ParseGemFile(file, lines, name)
			if !ok {
				continue
			}
			sum, err := fetch.HexDigest("sha256", l.Checksum)
			if err != nil {
				return fetch.FileSource{}, &httpx.UpstreamError{Status: http.StatusBadGateway, Msg: fmt.Sprintf("/info/%s: %v", name, err)}
			}
			return fetch.FileSource{URL: gm.m.URL + "/gems/" + file, Client: gm.env.Client, Digests: []fetch.Digest{sum}}, nil
		}
		return fetch.FileSource{}, lastErr
	})
}

var specRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.gemspec\.rz$`)

// quickSpec passes through a legacy gemspec (a version's never changes;
// the gem command checks it against the gem it then downloads).
func (gm *gemsMirror) quickSpec(w http.ResponseWriter, r *http.Request) error {
	spec := r.PathValue("spec")
	if !specRe.MatchString(spec) {
		return httpx.NewError(http.StatusNotFound, "not a gemspec name")
	}
	res, err := gm.meta(r.Context(), "quick/Marshal.4.8/"+spec, false)
	if err != nil {
		return err
	}
	return gm.env.Core.ServeMeta(w, r, res, hvBinary)
}

// judgeFile refuses a .gem a policy hides: its version is found in the
// /info of the name it belongs to; one no /info lists (taken down) is
// judged by its file name, with no publish time (fail closed).
func (gm *gemsMirror) judgeFile(w http.ResponseWriter, r *http.Request, file string, names []string) error {
	for _, name := range names {
		if !gm.filters(r, name) {
			continue
		}
		res, err := gm.infoMeta(r.Context(), name)
		if httpx.IsNotFound(err) {
			continue
		}
		if err != nil {
			return err
		}
		lines, err := fetch.Parsed(gm.env.Core, res.Entry, ParseInfo)
		if err != nil {
			return &httpx.UpstreamError{Status: http.StatusBadGateway, Msg: fmt.Sprintf("stored /info/%s: %v", name, err)}
		}
		if l, ok := ParseGemFile(file, lines, name); ok {
			return gm.heldBack(w, r, name, l.Version)
		}
	}
	if name := names[0]; gm.filters(r, name) {
		version := strings.TrimSuffix(strings.TrimPrefix(file, name+"-"), ".gem")
		return gm.heldBack(w, r, name, version)
	}
	return nil
}
