package pypi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/mirror-proxy/mirror-proxy/fetch"
	"github.com/mirror-proxy/mirror-proxy/hosted"
	"github.com/mirror-proxy/mirror-proxy/httpx"
	"github.com/mirror-proxy/mirror-proxy/mirror"
	"github.com/mirror-proxy/mirror-proxy/policy"
	"github.com/mirror-proxy/mirror-proxy/storage"
)

// pypiMirror serves one Python simple index under /N/: /N/simple/ (the
// project list), /N/simple/<project>/ (JSON or HTML by Accept) and
// /N/files/<project>/<sha256>/<filename>[.metadata].
type pypiMirror struct {
	env      *mirror.Env
	m        fetch.Mirror
	client   *http.Client
	repo     *hosted.Repo  // hosted projects; nil when the mirror hosts none
	derived  fetch.Derived // pages filtered by the policies
	rules    policy.Rules  // with PEP 503 names
	rootList hostedRootList
}

var _ mirror.Ecosystem = (*pypiMirror)(nil)

// rootTTL: the upstream's project list (several hundred thousand names on
// PyPI, used by no installer) is refreshed at most this often, in the
// background, while the stored copy is served.
const rootTTL = time.Hour

func init() {
	mirror.Register(mirror.Type{
		Client: func(u string) string {
			return "pip config set global.index-url " + u + "/simple/\n" +
				"# uv: UV_INDEX_URL=" + u + "/simple/   poetry: poetry source add --priority=primary mirror " + u + "/simple/"
		},
		Name:             "pypi",
		DefaultTTL:       10 * time.Minute, // PyPI's own CDN keeps project pages for 10 minutes
		DefaultFileHosts: []string{"files.pythonhosted.org"},
		OSVEcosystem:     "PyPI", OSVCompare: ComparePEP440, OSVNormalize: Normalize,
		Hosts: true,
		New:   newMirror,
	})
}

func newMirror(env *mirror.Env) mirror.Ecosystem {
	return &pypiMirror{env: env, m: env.Mirror, client: env.Client, repo: env.Repo, rules: env.Mirror.Rules.Normalized(Normalize)}
}

// Routes registers the mirror's routes.
func (pm *pypiMirror) Routes(rt mirror.Router) {
	if pm.repo != nil {
		pm.registerHosted(rt)
	}
	rt.Read("/simple", pm.redirectRoot)
	rt.Read("/simple/", pm.root)
	rt.Read("/simple/{project}", pm.redirectProject)
	rt.Read("/simple/{project}/", pm.project)
	rt.Read("/files/{project}/{key}/{filename}", pm.file)
}

func (pm *pypiMirror) metaKey(dir, name string) string { return pm.env.MetaKey(dir + "/" + name) }

func (pm *pypiMirror) redirectRoot(w http.ResponseWriter, r *http.Request) error {
	return httpx.Redirect(w, r, http.StatusMovedPermanently, httpx.MountPrefix(r, pm.m.Name)+"/simple/"+query(r))
}

// format is the ?format= parameter (no parsing without a query).
func format(r *http.Request) string {
	if r.URL.RawQuery == "" {
		return ""
	}
	return r.URL.Query().Get("format")
}

func query(r *http.Request) string {
	if q := r.URL.RawQuery; q != "" {
		return "?" + q
	}
	return ""
}

func (pm *pypiMirror) redirectProject(w http.ResponseWriter, r *http.Request) error {
	raw := r.PathValue("project")
	if !ValidName(raw) {
		return httpx.NewError(http.StatusNotFound, httpx.QuoteName(raw)+" is not a valid project name")
	}
	return httpx.Redirect(w, r, http.StatusMovedPermanently, httpx.MountPrefix(r, pm.m.Name)+"/simple/"+Normalize(raw)+"/"+query(r))
}

// rendered is a page in both formats, gzip-compressed once per stored
// version, so that a warm request is a memory copy.
type rendered struct {
	json, html *fetch.Doc
	project    *Project
	names      []string // of the root list
}

// Weight counts the two documents (the project's files are about the
// size of the JSON one again).
func (r *rendered) Weight() int64 { return 2*r.json.Weight() + r.html.Weight() }

func sha256Hex(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// hvTypes are the Content-Type values of the simple API's formats.
var hvTypes = map[string][]string{JSONType: {JSONType}, HTMLType: {HTMLType}, TextHTML: {TextHTML}}

func (pm *pypiMirror) projectSource(name string) *fetch.MetaSource {
	return &fetch.MetaSource{
		Key: pm.metaKey("simple", name+".json"), URL: pm.m.URL + "/" + name + "/",
		Client: pm.client, TTL: pm.m.TTL, NotFoundTTL: pm.m.NotFoundTTL, Accept: UpstreamAccept,
		SerialHeader: "X-PyPI-Last-Serial",
		Transform: func(b []byte, resp *http.Response) ([]byte, error) {
			p, err := ParseProject(b, resp.Header.Get("Content-Type"), resp.Request.URL.String())
			if err != nil {
				return nil, err
			}
			if p.Name == "" {
				p.Name = name // an HTML page carries no name: the request's (normalized) one
			}
			if p.Skipped > 0 {
				pm.env.Log.Warn("upstream page lists files the proxy cannot serve (no usable name or URL); left out",
					"mirror", pm.m.Name, "project", name, "skipped", p.Skipped)
			}
			return p.Marshal()
		},
	}
}

func (pm *pypiMirror) projectPage(ctx context.Context, name string) (fetch.MetaResult, *rendered, error) {
	res, err := pm.env.Core.MetaOf(ctx, pm.metaKey("simple", name+".json"), pm.m.TTL,
		func() *fetch.MetaSource { return pm.projectSource(name) })
	if err != nil {
		return res, nil, err
	}
	v, err := fetch.Parsed(pm.env.Core, res.Entry, func(b []byte) (*rendered, error) {
		p, err := Unmarshal(b)
		if err != nil {
			return nil, err
		}
		if p.Name == "" {
			p.Name = name // pages stored from an HTML upstream before names were filled in
		}
		return &rendered{json: fetch.NewDoc(p.RenderJSON(name), "j"), html: fetch.NewDoc(p.RenderHTML(name), "h"), project: p}, nil
	})
	if err != nil {
		return res, nil, &httpx.UpstreamError{Status: http.StatusBadGateway, Msg: fmt.Sprintf("stored page of %s: %v", name, err)}
	}
	return res, v, nil
}

func (pm *pypiMirror) project(w http.ResponseWriter, r *http.Request) error {
	raw := r.PathValue("project")
	if !ValidName(raw) {
		return httpx.NewError(http.StatusNotFound, httpx.QuoteName(raw)+" is not a valid project name")
	}
	if name := Normalize(raw); name != raw {
		return httpx.Redirect(w, r, http.StatusMovedPermanently, httpx.MountPrefix(r, pm.m.Name)+"/simple/"+name+"/"+query(r))
	}
	typ, err := Negotiate(httpx.HeaderValue(r, "Accept"), format(r))
	if err != nil {
		w.Header().Set("Vary", "Accept")
		return httpx.NewError(http.StatusNotAcceptable, err.Error())
	}
	if owned, err := pm.ownedBy(r.Context(), raw); err != nil || owned {
		if err != nil {
			return err
		}
		return pm.hostedPage(w, r, raw, typ)
	}
	if why := pm.rules.Refuse(raw); why != "" {
		return httpx.NewError(http.StatusNotFound, why)
	}
	res, page, err := pm.projectPage(r.Context(), raw)
	if err != nil {
		return err
	}
	if pm.filters(r, raw) {
		page = pm.cooled(r, res, page, raw)
		if pm.repo == nil {
			// Filtered from the stored page alone, and so until the next
			// held-back file comes of age.
			pm.derived.Replayable(w, r, fetch.DerivedKey{ID: res.Entry.ID()}, pm.m.TTL, fetch.ReplayFrom{Key: pm.metaKey("simple", raw+".json"), Res: res})
		}
	} else if pm.repo == nil {
		// The page depends only on the stored one and the request's
		// shape: the server may send it again as it is (fetch.Replayable).
		fetch.Replayable(w, pm.metaKey("simple", raw+".json"), pm.m.TTL, res)
	}
	d := page.html
	if typ == JSONType {
		d = page.json
	}
	return fetch.ServeDoc(w, r, d, hvTypes[typ], res)
}

func (pm *pypiMirror) root(w http.ResponseWriter, r *http.Request) error {
	typ, err := Negotiate(httpx.HeaderValue(r, "Accept"), format(r))
	if err != nil {
		w.Header().Set("Vary", "Accept")
		return httpx.NewError(http.StatusNotAcceptable, err.Error())
	}
	var names *hosted.Names
	if pm.repo != nil {
		if names, err = pm.repo.Names(r.Context()); err != nil {
			return err
		}
		if pm.m.URL == "" {
			page := pm.rootList.get(nil, nil, names)
			d := page.html
			if typ == JSONType {
				d = page.json
			}
			return fetch.ServeDoc(w, r, d, hvTypes[typ], fetch.HostedEntry(time.Time{}))
		}
	}
	res, err := pm.env.Core.Meta(r.Context(), &fetch.MetaSource{
		Key: pm.metaKey("simple", "index"), URL: pm.m.URL + "/", Client: pm.client,
		TTL: max(rootTTL, pm.m.TTL), NotFoundTTL: pm.m.NotFoundTTL, Accept: UpstreamAccept,
		StaleWhileRevalidate: true,
		Transform: func(b []byte, resp *http.Response) ([]byte, error) {
			idx, err := ParseIndex(b, resp.Header.Get("Content-Type"))
			if err != nil {
				return nil, err
			}
			return idx.Marshal(), nil
		},
	})
	if err != nil {
		if errors.Is(err, httpx.ErrNotFound) {
			err = &httpx.UpstreamError{Status: http.StatusBadGateway, Msg: fmt.Sprintf("upstream %s has no project list: check the mirror's url", pm.m.URL)}
		}
		return err
	}
	v, err := fetch.Parsed(pm.env.Core, res.Entry, func(b []byte) (*rendered, error) {
		idx := UnmarshalIndex(b)
		return &rendered{json: fetch.NewDoc(idx.RenderJSON(), "j"), html: fetch.NewDoc(idx.RenderHTML(), "h"), names: idx.Names}, nil
	})
	if err != nil {
		return err
	}
	page := v
	if names != nil && len(names.List) > 0 {
		page = pm.rootList.get(res.Entry, page.names, names)
	}
	d := page.html
	if typ == JSONType {
		d = page.json
	}
	return fetch.ServeDoc(w, r, d, hvTypes[typ], res)
}

var fileKeyRe = regexp.MustCompile(`^(u-)?[0-9a-f]{64}$`)

// file serves a distribution file or its core metadata. The storage key is
// the URL's own path, so a stored file needs no metadata lookup; a missing
// one is looked up in the project's page, and only the URL found there is
// downloaded, verified against the page's sha256.
func (pm *pypiMirror) file(w http.ResponseWriter, r *http.Request) error {
	project, key := r.PathValue("project"), r.PathValue("key")
	filename, err := url.PathUnescape(r.PathValue("filename"))
	if err != nil || !ValidName(project) || Normalize(project) != project ||
		!fileKeyRe.MatchString(key) || !ValidFilename(filename) {
		return httpx.NewError(http.StatusNotFound, "not a file URL of this mirror: expected /files/<project>/<sha256>/<filename>")
	}
	base, isMeta := strings.CutSuffix(filename, ".metadata")
	h := w.Header()
	if !isMeta && !strings.HasPrefix(key, "u-") {
		h.Set("ETag", `"`+key+`"`)
	}
	if owned, err := pm.ownedBy(r.Context(), project); err != nil || owned {
		if err != nil {
			return err
		}
		return pm.hostedFile(w, r, project, key, filename)
	}
	if why := pm.rules.Refuse(project); why != "" {
		return httpx.NewError(http.StatusNotFound, why)
	}
	if pm.filters(r, project) {
		if err := pm.heldBack(w, r, project, key, base, isMeta); err != nil {
			return err
		}
	}
	skey := storage.Join(pm.env.DistPrefix, pm.m.Name, project, key, filename)
	err = pm.env.Core.ServeFile(w, r, skey, func(ctx context.Context) (fetch.FileSource, error) {
		_, r, err := pm.projectPage(ctx, project)
		if err != nil {
			return fetch.FileSource{}, err
		}
		f, ok := r.project.FindFile(key, base)
		if !ok {
			return fetch.FileSource{}, httpx.NewError(http.StatusNotFound, fmt.Sprintf("%s is not a file of %s in the mirrored index", base, project))
		}
		if isMeta {
			if !f.HasMetadata() {
				return fetch.FileSource{}, httpx.NewError(http.StatusNotFound, fmt.Sprintf("the index advertises no core metadata for %s", base))
			}
			src := fetch.FileSource{URL: f.URL + ".metadata", Client: pm.client}
			if sum, err := fetch.HexDigest("sha256", f.MetadataSHA256()); err == nil {
				src.Digests = []fetch.Digest{sum}
			}
			return src, nil
		}
		src := fetch.FileSource{URL: f.URL, Client: pm.client}
		if !strings.HasPrefix(key, "u-") {
			if sum, err := fetch.HexDigest("sha256", key); err == nil {
				src.Digests = []fetch.Digest{sum}
			}
		}
		if f.Size != nil && *f.Size > 0 {
			src.Size = *f.Size
		}
		return src, nil
	})
	return err
}
