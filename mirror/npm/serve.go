package npm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/mirror-proxy/mirror-proxy/fetch"
	"github.com/mirror-proxy/mirror-proxy/hosted"
	"github.com/mirror-proxy/mirror-proxy/httpx"
	"github.com/mirror-proxy/mirror-proxy/mirror"
	"github.com/mirror-proxy/mirror-proxy/osv"
	"github.com/mirror-proxy/mirror-proxy/storage"
)

func init() {
	mirror.Register(mirror.Type{
		Client:     func(u string) string { return "npm config set registry " + u + "/" },
		Name:       "npm",
		DefaultURL: "https://registry.npmjs.org",
		// The registry publishes within seconds; a packument is small to
		// revalidate (ETag).
		DefaultTTL: 5 * time.Minute,
		// npm and pacote describe each request in headers; no handler
		// reads them.
		ReplayIgnores: []string{"Npm-Command", "Npm-Session", "Npm-Scope", "Npm-In-Ci", "Npm-Auth-Type",
			"Pacote-Version", "Pacote-Req-Type", "Pacote-Pkg-Id"},
		OSVEcosystem: "npm", OSVCompare: osv.SemVer,
		Hosts: true,
		New:   newMirror,
	})
}

// npmMirror serves one npm registry mirror under /N/:
//
//	/N/<name>, /N/@scope%2fname, /N/@scope/name   packuments (full or abbreviated by Accept)
//	/N/<name>/-/<file>.tgz, /N/@scope/name/-/<file>.tgz   tarballs
//	/N/-/ping, /N/-/v1/search, POST /N/-/npm/v1/security/...   forwarded
type npmMirror struct {
	env     *mirror.Env
	m       fetch.Mirror
	client  *http.Client
	repo    *hosted.Repo  // hosted packages; nil when the mirror hosts none
	derived fetch.Derived // packuments filtered by the cooldown
}

var _ mirror.Ecosystem = (*npmMirror)(nil)

func newMirror(env *mirror.Env) mirror.Ecosystem {
	return &npmMirror{env: env, m: env.Mirror, client: env.Client, repo: env.Repo}
}

// Routes registers the mirror's routes.
func (nm *npmMirror) Routes(rt mirror.Router) {
	if nm.repo != nil {
		nm.registerHosted(rt)
	}
	rt.Read("/-/ping", nm.ping)
	rt.Read("/-/v1/search", nm.search)
	rt.Handle(http.MethodPost, "/-/npm/v1/security/advisories/bulk", nm.audit)
	rt.Handle(http.MethodPost, "/-/npm/v1/security/audits/quick", nm.audit)
	rt.Read("/{a}", nm.packument)
	rt.Read("/{a}/{b}", nm.packument)
	rt.Read("/{a}/-/{file}", nm.tarball)
	rt.Read("/{a}/{b}/-/{file}", nm.tarball)
}

// name reads a package name from the path: "lodash", "@scope%2fname" (one
// segment) or "@scope" "name" (two).
func name(r *http.Request) (string, error) {
	a, err := url.PathUnescape(r.PathValue("a"))
	if err != nil {
		return "", err
	}
	n := a
	if b := r.PathValue("b"); b != "" {
		if !strings.HasPrefix(a, "@") || strings.Contains(a, "/") {
			return "", fmt.Errorf("%s is not a package name", httpx.QuoteName(a+"/"+b))
		}
		n = a + "/" + b
	}
	if !ValidName(n) {
		return "", fmt.Errorf("%s is not a package name", httpx.QuoteName(n))
	}
	return n, nil
}

// packumentKey is where a representation of a packument is kept: each
// form in its own directory, never as a suffix of the name (npm names may
// hold "." and "~": the full packument of "x.abbreviated" once shared a key
// with the abbreviated one of "x").
func (nm *npmMirror) packumentKey(name string, abbreviated bool) string {
	if abbreviated {
		return nm.env.MetaKey("packuments/abbreviated/" + name + ".json")
	}
	return nm.env.MetaKey("packuments/full/" + name + ".json")
}

func (nm *npmMirror) source(name string, abbreviated bool) *fetch.MetaSource {
	accept := FullType
	if abbreviated {
		accept = AbbreviatedType
	}
	return &fetch.MetaSource{
		Key: nm.packumentKey(name, abbreviated), URL: nm.m.URL + "/" + Escape(name),
		Client: nm.client, TTL: nm.m.TTL, NotFoundTTL: nm.m.NotFoundTTL, Accept: accept,
		Transform: func(b []byte, _ *http.Response) ([]byte, error) {
			p, err := Parse(b)
			if err != nil {
				return nil, err
			}
			if p.Name != name {
				return nil, fmt.Errorf("the upstream answered for %q with the packument of %q", name, p.Name)
			}
			return b, nil
		},
	}
}

// parsed is a stored packument as requests need it: its tarballs, and the
// documents rendered for the base URLs clients used (bounded).
type parsed struct {
	pkg      *Packument
	body     []byte
	mu       sync.Mutex
	rendered map[string]*fetch.Doc
}

// Weight is what a filtered packument holds once served: the body, its
// parsed form and one rendering (about the body's size each; more base
// URLs add renderings later, up to maxBases).
func (p *parsed) Weight() int64 { return 3 * int64(len(p.body)) }

// maxBases bounds the renderings kept per packument: without PUBLIC_URL
// each Host header names its own base, and clients choose Host headers.
const maxBases = 16

func (p *parsed) doc(base string) (*fetch.Doc, error) {
	p.mu.Lock()
	d := p.rendered[base]
	p.mu.Unlock()
	if d != nil {
		return d, nil
	}
	b, err := Render(p.body, base)
	if err != nil {
		return nil, err
	}
	d = fetch.NewDoc(b, "n")
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rendered == nil || len(p.rendered) >= maxBases {
		p.rendered = map[string]*fetch.Doc{}
	}
	p.rendered[base] = d
	return d, nil
}

func (nm *npmMirror) load(ctx context.Context, name string, abbreviated bool) (fetch.MetaResult, *parsed, error) {
	res, err := nm.env.Core.MetaOf(ctx, nm.packumentKey(name, abbreviated), nm.m.TTL,
		func() *fetch.MetaSource { return nm.source(name, abbreviated) })
	if err != nil {
		return res, nil, err
	}
	v, err := fetch.Parsed(nm.env.Core, res.Entry, func(b []byte) (*parsed, error) {
		p, err := Parse(b)
		if err != nil {
			return nil, err
		}
		return &parsed{pkg: p, body: b}, nil
	})
	if err != nil {
		return res, nil, &httpx.UpstreamError{Status: http.StatusBadGateway, Msg: fmt.Sprintf("stored packument of %s: %v", name, err)}
	}
	// Whatever cache it came from, a packument is served only under its
	// own name.
	if p := v; p.pkg.Name != name {
		return res, nil, &httpx.UpstreamError{Status: http.StatusBadGateway, Msg: fmt.Sprintf("the packument stored for %s is that of %s", name, httpx.QuoteName(p.pkg.Name))}
	}
	return res, v, nil
}

var (
	hvFull        = []string{FullType}
	hvAbbreviated = []string{AbbreviatedType}
)

func (nm *npmMirror) packument(w http.ResponseWriter, r *http.Request) error {
	n, err := name(r)
	if err != nil {
		return httpx.NewError(http.StatusNotFound, err.Error())
	}
	if owned, err := nm.ownedBy(r.Context(), n); err != nil || owned {
		if err != nil {
			return err
		}
		return nm.hostedPackument(w, r, n)
	}
	if why := nm.m.Rules.Refuse(n); why != "" {
		return httpx.NewError(http.StatusNotFound, why)
	}
	abbreviated := Abbreviated(httpx.HeaderValue(r, "Accept"))
	res, p, err := nm.load(r.Context(), n, abbreviated)
	if err != nil {
		return err
	}
	if nm.filters(r, n) {
		if p, err = nm.cooled(w, r, n, abbreviated, res, p); err != nil {
			return err
		}
	} else if nm.repo == nil {
		// The packument depends only on the stored one and the request's
		// shape (its base URL among it): the server may send it again as
		// it is (fetch.Replayable).
		fetch.Replayable(w, nm.packumentKey(n, abbreviated), nm.m.TTL, res)
	}
	d, err := p.doc(httpx.BaseURL(r, nm.env.PublicURL, nm.m.Name))
	if err != nil {
		return &httpx.UpstreamError{Status: http.StatusBadGateway, Msg: fmt.Sprintf("packument of %s: %v", n, err)}
	}
	ctype := hvFull
	if abbreviated {
		ctype = hvAbbreviated
	}
	return fetch.ServeDoc(w, r, d, ctype, res)
}

// tarball serves <name>/-/<file>: from storage when it is there, else
// fetched from the URL the mirrored packument gives for that file, and
// verified against its integrity (sha512) or shasum before it is stored.
func (nm *npmMirror) tarball(w http.ResponseWriter, r *http.Request) error {
	n, err := name(r)
	file := r.PathValue("file")
	if err != nil || !ValidTarball(file) {
		return httpx.NewError(http.StatusNotFound, "not a tarball URL of this mirror: expected /<name>/-/<file>.tgz")
	}
	if owned, err := nm.ownedBy(r.Context(), n); err != nil || owned {
		if err != nil {
			return err
		}
		return nm.hostedTarball(w, r, n, file)
	}
	if why := nm.m.Rules.Refuse(n); why != "" {
		return httpx.NewError(http.StatusNotFound, why)
	}
	if nm.filters(r, n) {
		if err := nm.heldBack(w, r, n, file); err != nil {
			return err
		}
	}
	key := storage.Join(nm.env.DistPrefix, nm.m.Name, n, "-", file)
	return nm.env.Core.ServeFile(w, r, key, func(ctx context.Context) (fetch.FileSource, error) {
		// The abbreviated packument is what npm installs read, and the
		// smaller one; the full one serves when only it is in memory.
		var p *parsed
		var err error
		if _, ok := nm.env.Core.FreshInMemory(nm.packumentKey(n, false), nm.m.TTL); ok {
			_, p, err = nm.load(ctx, n, false)
		} else {
			_, p, err = nm.load(ctx, n, true)
		}
		if err != nil {
			return fetch.FileSource{}, err
		}
		d, ok := p.pkg.Find(file)
		if !ok {
			return fetch.FileSource{}, httpx.NewError(http.StatusNotFound, fmt.Sprintf("%s is not a tarball of %s in the mirrored metadata", httpx.QuoteName(file), n))
		}
		src := fetch.FileSource{URL: d.Tarball, Client: nm.client}
		if u, err := url.Parse(d.Tarball); err == nil && !u.IsAbs() {
			if base, err := url.Parse(nm.m.URL + "/"); err == nil {
				src.URL = base.ResolveReference(u).String()
			}
		}
		if sum, err := fetch.SRIDigest(d.Integrity); err == nil {
			src.Digests = []fetch.Digest{sum}
		} else if sum, err := fetch.HexDigest("sha1", d.Shasum); err == nil {
			src.Digests = []fetch.Digest{sum}
		} else {
			src.Check = fetch.ArchiveCheck("tgz")
		}
		return src, nil
	})
}

func (nm *npmMirror) ping(w http.ResponseWriter, r *http.Request) error {
	return httpx.WriteJSON(w, http.StatusOK, map[string]any{})
}

// search forwards a search to the upstream (text, size and from only);
// it is not cached.
func (nm *npmMirror) search(w http.ResponseWriter, r *http.Request) error {
	q := url.Values{}
	for _, k := range []string{"text", "size", "from"} {
		if v := r.URL.Query().Get(k); v != "" {
			q.Set(k, httpx.Truncate(v, 200))
		}
	}
	return nm.forward(w, r, http.MethodGet, nm.m.URL+"/-/v1/search?"+q.Encode(), nil, 0)
}

// maxAuditBody bounds an audit request, as every request body on a read
// route (a lock file's names and versions, compressed: far below).
const maxAuditBody = 1 << 20

// audit forwards npm audit's request to the upstream, its body streamed
// as sent (never held in memory), once it is known there is an upstream.
func (nm *npmMirror) audit(w http.ResponseWriter, r *http.Request) error {
	if r.ContentLength > maxAuditBody {
		return httpx.NewError(http.StatusRequestEntityTooLarge, "audit request larger than 1 MiB")
	}
	if a, ok := nm.m.Rules.Advisor.(auditor); ok {
		return nm.auditLocally(w, r, a)
	}
	if nm.m.URL == "" {
		return httpx.NewError(http.StatusNotFound, "a repository without upstream forwards nothing")
	}
	body := http.MaxBytesReader(w, r.Body, maxAuditBody)
	err := nm.forward(w, r, http.MethodPost, nm.auditTarget(r), body, r.ContentLength)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return httpx.NewError(http.StatusRequestEntityTooLarge, "audit request larger than 1 MiB")
	}
	return err
}

func (nm *npmMirror) auditTarget(r *http.Request) string {
	return nm.m.URL + strings.TrimPrefix(r.URL.Path, httpx.RoutePrefix(r.URL.Path, nm.m.Name))
}

// forward sends a request to the upstream and passes its JSON answer on.
func (nm *npmMirror) forward(w http.ResponseWriter, r *http.Request, method, target string, body io.Reader, size int64) error {
	if nm.m.URL == "" {
		return httpx.NewError(http.StatusNotFound, "a repository without upstream forwards nothing")
	}
	req, err := http.NewRequestWithContext(r.Context(), method, target, body)
	if err != nil {
		return err
	}
	if body != nil && size >= 0 {
		req.ContentLength = size
	}
	for _, h := range []string{"Content-Type", "Content-Encoding", "Accept", "npm-command"} {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	resp, err := nm.client.Do(req)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return err
	}
	if err != nil {
		return fetch.TransportError(target, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
		return fetch.StatusError(target, resp)
	}
	b, release, err := nm.env.Core.ReadBody(r.Context(), resp)
	defer release()
	if err != nil {
		return fetch.TransportError(target, err)
	}
	ctype := resp.Header.Get("Content-Type")
	if ctype == "" {
		ctype = "application/json"
	}
	return httpx.WriteBlob(w, resp.StatusCode, ctype, b)
}
