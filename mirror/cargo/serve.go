package cargo

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/mirror-proxy/mirror-proxy/fetch"
	"github.com/mirror-proxy/mirror-proxy/httpx"
	"github.com/mirror-proxy/mirror-proxy/mirror"
	"github.com/mirror-proxy/mirror-proxy/storage"
)

func init() {
	mirror.Register(mirror.Type{
		Client: func(u string) string {
			return "# .cargo/config.toml\n[source.crates-io]\nreplace-with = \"mirror\"\n\n[source.mirror]\nregistry = \"sparse+" + u + "/\""
		},
		Name: "cargo",
		// The sparse index; crate files come from where its config.json's
		// dl says (static.crates.io for crates.io).
		DefaultURL:       "https://index.crates.io",
		DefaultTTL:       5 * time.Minute,
		DefaultFileHosts: []string{"static.crates.io"},
		Hosts:            true,
		New:              newMirror,
	})
}

// cargoMirror serves one sparse registry under /N/:
//
//	/N/config.json                      the proxy's own: dl (and api) lead back to it
//	/N/1/a, /N/2/ab, /N/3/a/abc, /N/ab/cd/abcd...
//	                                    index files, revalidated and served stale
//	/N/dl/<crate>/<version>/download    .crate files, verified against the index's cksum
type cargoMirror struct {
	env     *mirror.Env
	m       fetch.Mirror
	derived fetch.Derived // index files filtered by the policies
}

var _ mirror.Ecosystem = (*cargoMirror)(nil)

func newMirror(env *mirror.Env) mirror.Ecosystem {
	return &cargoMirror{env: env, m: env.Mirror}
}

// Routes registers the mirror's routes.
func (cm *cargoMirror) Routes(rt mirror.Router) {
	rt.Read("/config.json", cm.config)
	rt.Read("/dl/{crate}/{version}/download", cm.download)
	rt.Read("/{rest...}", cm.index)
	rt.Write(http.MethodPut, "/api/v1/crates/new", cargoErrors(cm.publish))
	rt.Write(http.MethodDelete, "/api/v1/crates/{crate}/{version}/yank", cargoErrors(cm.yank(true)))
	rt.Write(http.MethodPut, "/api/v1/crates/{crate}/{version}/unyank", cargoErrors(cm.yank(false)))
}

var (
	hvText   = []string{"text/plain; charset=utf-8"}
	hvBinary = []string{"application/x-tar"}
)

// config answers the proxy's own config.json: downloads (and, for a
// hosted mirror, the API) lead back to the proxy; auth-required when
// reading needs a token.
func (cm *cargoMirror) config(w http.ResponseWriter, r *http.Request) error {
	base := httpx.BaseURL(r, cm.env.PublicURL, cm.m.Name)
	c := Config{DL: base + "/dl", AuthRequired: cm.env.TokenName != nil && !cm.m.Public}
	if cm.env.Repo != nil {
		c.API = base
	}
	b, _ := json.Marshal(c)
	w.Header().Set("Cache-Control", "no-cache")
	return httpx.WriteBlob(w, http.StatusOK, "application/json", b)
}

// upstreamConfig is the upstream's config.json, parsed once per version.
func (cm *cargoMirror) upstreamConfig(ctx context.Context) (Config, error) {
	key := cm.env.MetaKey("config.json")
	res, err := cm.env.Core.MetaOf(ctx, key, cm.m.TTL, func() *fetch.MetaSource {
		return &fetch.MetaSource{Key: key, URL: cm.m.URL + "/config.json", Client: cm.env.Client, TTL: cm.m.TTL,
			NotFoundTTL: cm.m.NotFoundTTL, Transform: func(b []byte, _ *http.Response) ([]byte, error) {
				_, err := ParseConfig(b)
				return b, err
			}}
	})
	if err != nil {
		if httpx.IsNotFound(err) {
			err = &httpx.UpstreamError{Status: http.StatusBadGateway, Msg: fmt.Sprintf("upstream %s has no config.json: check the mirror's url (the index, such as https://index.crates.io)", cm.m.URL)}
		}
		return Config{}, err
	}
	return fetch.Parsed(cm.env.Core, res.Entry, ParseConfig)
}

// indexMeta is a crate's index file.
func (cm *cargoMirror) indexMeta(ctx context.Context, name string) (fetch.MetaResult, error) {
	p := IndexPath(name)
	key := cm.env.MetaKey("index/" + p)
	return cm.env.Core.MetaOf(ctx, key, cm.m.TTL, func() *fetch.MetaSource {
		return &fetch.MetaSource{Key: key, URL: cm.m.URL + "/" + p, Client: cm.env.Client, TTL: cm.m.TTL,
			NotFoundTTL: cm.m.NotFoundTTL, Transform: func(b []byte, _ *http.Response) ([]byte, error) {
				_, err := ParseIndex(b)
				return b, err
			}}
	})
}

// parsedIndex is a crate's index file, parsed once per stored version.
func (cm *cargoMirror) parsedIndex(ctx context.Context, name string) (fetch.MetaResult, *Index, error) {
	res, err := cm.indexMeta(ctx, name)
	if err != nil {
		return res, nil, err
	}
	ix, err := fetch.Parsed(cm.env.Core, res.Entry, ParseIndex)
	if err != nil {
		return res, nil, &httpx.UpstreamError{Status: http.StatusBadGateway, Msg: fmt.Sprintf("stored index of %s: %v", name, err)}
	}
	return res, ix, nil
}

func (cm *cargoMirror) index(w http.ResponseWriter, r *http.Request) error {
	name, ok := ParseIndexPath(r.PathValue("rest"))
	if !ok {
		return httpx.NewError(http.StatusNotFound, "not an index file of this registry (1/a, 2/ab, 3/a/abc, ab/cd/abcd...)")
	}
	if owned, err := cm.owned(r.Context(), name); err != nil || owned {
		if err != nil {
			return err
		}
		return cm.hostedIndex(w, r, name)
	} else if cm.m.URL == "" {
		return httpx.NewError(http.StatusNotFound, name+" is not published here")
	}
	if why := cm.m.Rules.Refuse(name); why != "" {
		return httpx.NewError(http.StatusNotFound, why)
	}
	res, err := cm.indexMeta(r.Context(), name)
	if err != nil {
		return err
	}
	if cm.filters(r, name) {
		return cm.filteredIndex(w, r, name, res)
	}
	if cm.env.Repo == nil {
		fetch.Replayable(w, cm.env.MetaKey("index/"+IndexPath(name)), cm.m.TTL, res)
	}
	return cm.env.Core.ServeMeta(w, r, res, hvText)
}

var versRe = regexp.MustCompile(`^[0-9A-Za-z.+-]{1,128}$`)

// download serves a .crate: stored, or downloaded from where the
// upstream's config.json says and verified against the index's cksum.
func (cm *cargoMirror) download(w http.ResponseWriter, r *http.Request) error {
	name, vers := r.PathValue("crate"), r.PathValue("version")
	if !ValidName(name) || !versRe.MatchString(vers) {
		return httpx.NewError(http.StatusNotFound, "not a crate download of this registry: /dl/<crate>/<version>/download")
	}
	if owned, err := cm.owned(r.Context(), name); err != nil || owned {
		if err != nil {
			return err
		}
		return cm.hostedDownload(w, r, name, vers)
	} else if cm.m.URL == "" {
		return httpx.NewError(http.StatusNotFound, name+" is not published here")
	}
	if why := cm.m.Rules.Refuse(name); why != "" {
		return httpx.NewError(http.StatusNotFound, why)
	}
	if cm.filters(r, name) {
		if err := cm.heldBack(w, r, name, vers); err != nil {
			return err
		}
	}
	key := storage.Join(cm.env.DistPrefix, cm.m.Name, "crates", strings.ToLower(name), vers+".crate")
	w.Header()["Content-Type"] = hvBinary
	return cm.env.Core.ServeFile(w, r, key, func(ctx context.Context) (fetch.FileSource, error) {
		_, ix, err := cm.parsedIndex(ctx, name)
		if err != nil {
			return fetch.FileSource{}, err
		}
		v, ok := ix.Find(vers)
		if !ok {
			return fetch.FileSource{}, httpx.NewError(http.StatusNotFound, fmt.Sprintf("%s %s is not in the mirrored index", name, vers))
		}
		sum, err := fetch.HexDigest("sha256", v.Cksum)
		if err != nil {
			return fetch.FileSource{}, &httpx.UpstreamError{Status: http.StatusBadGateway, Msg: fmt.Sprintf("the index's cksum of %s %s: %v", name, vers, err)}
		}
		cfg, err := cm.upstreamConfig(ctx)
		if err != nil {
			return fetch.FileSource{}, err
		}
		return fetch.FileSource{URL: DownloadURL(cfg.DL, v.Name, v.Vers, v.Cksum), Client: cm.env.Client, Digests: []fetch.Digest{sum}}, nil
	})
}
