package composer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mirror-proxy/mirror-proxy/fetch"
	"github.com/mirror-proxy/mirror-proxy/hosted"
	"github.com/mirror-proxy/mirror-proxy/httpx"
	"github.com/mirror-proxy/mirror-proxy/mirror"
	"github.com/mirror-proxy/mirror-proxy/storage"
)

func init() {
	mirror.Register(mirror.Type{
		Client: func(u string) string {
			return "composer config repos.packagist composer " + u + "\n" +
				"composer config secure-http false   # only while the proxy is plain http"
		},
		Name:       "composer",
		DefaultTTL: 5 * time.Minute, // Packagist re-dumps p2 files within seconds of a release
		// GitHub, GitLab and Bitbucket, where Packagist's dists live.
		DefaultFileHosts: []string{"github.com", "api.github.com", "codeload.github.com", "gitlab.com", "bitbucket.org", "api.bitbucket.org"},
		// Also under Packeton's /mirror/N/.
		Mounts: func(name string) []string { return []string{"/" + name, "/mirror/" + name} },
		// Advisories: OSV's "Packagist" ecosystem, names lowered as
		// Composer's are.
		OSVEcosystem: "Packagist", OSVCompare: CompareVersions, OSVNormalize: strings.ToLower,
		Hosts:          true,
		New:            newMirror,
		AdjustResponse: githubRateLimit,
	})
}

// githubRateLimit turns GitHub's way of saying "rate limited" (a 403
// with X-RateLimit-Remaining: 0, on the zipball URLs Packagist's dists
// name) into a 429, which the core answers with 503 and Retry-After
// instead of a 502.
func githubRateLimit(resp *http.Response) {
	if resp.StatusCode == http.StatusForbidden && resp.Header.Get("X-RateLimit-Remaining") == "0" {
		resp.StatusCode, resp.Status = http.StatusTooManyRequests, "429 Too Many Requests (GitHub rate limit)"
		if resp.Header.Get("Retry-After") == "" {
			if reset, err := strconv.ParseInt(resp.Header.Get("X-RateLimit-Reset"), 10, 64); err == nil {
				if wait := time.Until(time.Unix(reset, 0)); wait > 0 {
					resp.Header.Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
				}
			}
		}
	}
}

// composerMirror serves one Composer 2 mirror under /N/ and Packeton's
// /mirror/N/.
type composerMirror struct {
	env     *mirror.Env
	m       fetch.Mirror
	client  *http.Client
	rootKey string
	repo    *hosted.Repo  // hosted packages; nil when the mirror hosts none
	roots   hostedRoots   // packages.json of a mirror without upstream
	derived fetch.Derived // p2 files filtered by the cooldown
}

var _ mirror.Ecosystem = (*composerMirror)(nil)

func newMirror(env *mirror.Env) mirror.Ecosystem {
	cm := &composerMirror{env: env, m: env.Mirror, client: env.Client, repo: env.Repo}
	cm.rootKey = cm.metaKey("packages.json")
	return cm
}

// Routes registers the mirror's routes under one mount.
func (cm *composerMirror) Routes(rt mirror.Router) {
	if cm.repo != nil {
		cm.registerHosted(rt)
	}
	rt.Read("/packages.json", cm.root)
	rt.Read("/p2/{vendor}/{file}", cm.p2)
	rt.Read("/zipball/{vendor}/{package}/{version}/{file}", cm.dist)
	rt.Handle(http.MethodPost, "/api/security-advisories/", cm.advisories)
}

// metaKey is <meta prefix>/<mirror>/<path>; path is validated by the
// caller (the prefix and the name were validated at startup).
func (cm *composerMirror) metaKey(path string) string { return cm.env.MetaKey(path) }

func (cm *composerMirror) source(key, url string, transform func([]byte, *http.Response) ([]byte, error)) *fetch.MetaSource {
	return &fetch.MetaSource{Key: key, URL: url, Client: cm.client, TTL: cm.m.TTL, NotFoundTTL: cm.m.NotFoundTTL,
		Accept: "application/json", Transform: transform}
}

// rootInfo is an upstream root parsed once per stored version, with what
// requests need from it precomputed.
type rootInfo struct {
	root     Root
	p2tmpl   string // absolute upstream URL template of p2 files
	advURL   string // upstream security advisories API, or ""
	mu       sync.Mutex
	rendered map[string]*fetch.Doc // prefix and advisories URL → the client root
}

// maxRenderedRoots bounds the client roots kept per stored root: without
// PUBLIC_URL each Host header names its own advisories URL, and clients
// choose Host headers.
const maxRenderedRoots = 16

// clientRoot returns the root rendered for prefix and adv, rendering it
// at most once while it stays among the kept ones.
func (ri *rootInfo) clientRoot(prefix, adv string, hostedNames *hosted.Names) (*fetch.Doc, error) {
	k := prefix + " " + adv
	_, listed := ri.root["available-packages"]
	listed = listed && hostedNames != nil && len(hostedNames.List) > 0
	if listed {
		k += " " + hostedNames.Gen
	}
	ri.mu.Lock()
	d, ok := ri.rendered[k]
	ri.mu.Unlock()
	if ok {
		return d, nil
	}
	body, err := ri.root.ClientRoot(prefix, adv)
	if err != nil {
		return nil, err
	}
	if listed {
		// The upstream lists its names, and a client asks for no other:
		// the hosted ones are added.
		body = WithAvailable(body, hostedNames.List)
	}
	nd := fetch.NewDoc(body, "r")
	ri.mu.Lock()
	defer ri.mu.Unlock()
	if ri.rendered == nil || len(ri.rendered) >= maxRenderedRoots {
		ri.rendered = map[string]*fetch.Doc{}
	}
	ri.rendered[k] = nd
	return nd, nil
}

// upstreamRoot returns the upstream's packages.json, parsed once per version.
func (cm *composerMirror) upstreamRoot(ctx context.Context) (fetch.MetaResult, *rootInfo, error) {
	res, err := cm.env.Core.MetaOf(ctx, cm.rootKey, cm.m.TTL, func() *fetch.MetaSource {
		return cm.source(cm.rootKey, cm.m.URL+"/packages.json",
			func(b []byte, _ *http.Response) ([]byte, error) { _, err := ParseRoot(b); return b, err })
	})
	if err != nil {
		if errors.Is(err, httpx.ErrNotFound) {
			// The root is not a package: its absence is an upstream fault.
			err = &httpx.UpstreamError{Status: http.StatusBadGateway, Msg: fmt.Sprintf("upstream %s has no packages.json: check the mirror's url", cm.m.URL)}
		}
		return res, nil, err
	}
	ri, err := fetch.Parsed(cm.env.Core, res.Entry, func(b []byte) (*rootInfo, error) {
		root, err := ParseRoot(b)
		if err != nil {
			return nil, err
		}
		return &rootInfo{root: root, p2tmpl: root.P2URL(cm.m.URL, "%package%"), advURL: root.AdvisoriesURL(cm.m.URL)}, nil
	})
	if err != nil {
		return res, nil, err
	}
	return res, ri, nil
}

func (cm *composerMirror) root(w http.ResponseWriter, r *http.Request) error {
	if cm.m.URL == "" {
		return cm.hostedOnlyRoot(w, r)
	}
	var names *hosted.Names
	if cm.repo != nil {
		n, err := cm.repo.Names(r.Context())
		if err != nil {
			return err
		}
		names = n
	}
	res, root, err := cm.upstreamRoot(r.Context())
	if err != nil && cm.repo != nil {
		// Hosted packages do not depend on the upstream: with its root
		// unavailable (and none stored), the root lists the hosted names.
		cm.env.Log.Warn("upstream root unavailable; serving the hosted packages' root", "mirror", cm.m.Name, "err", err)
		w.Header().Set("X-Mirror-Upstream", "unavailable")
		return cm.hostedOnlyRoot(w, r)
	}
	if err != nil {
		return err
	}
	prefix := httpx.MountPrefix(r, cm.m.Name)
	adv := ""
	if _, local := cm.m.Rules.Advisor.(auditor); root.advURL != "" || local {
		adv = httpx.BaseURL(r, cm.env.PublicURL, cm.m.Name) + "/api/security-advisories/"
	}
	d, err := root.clientRoot(prefix, adv, names)
	if err != nil {
		return err
	}
	return fetch.ServeMetaBody(w, r, res, httpx.HeaderJSON, d)
}

func (cm *composerMirror) p2(w http.ResponseWriter, r *http.Request) error {
	vendor := r.PathValue("vendor")
	pkg, dev, ok := ParseP2File(r.PathValue("file"))
	name := vendor + "/" + pkg
	if !ok || !ValidName(name) {
		return httpx.NewError(http.StatusNotFound, httpx.QuoteName(name)+" is not a valid lowercase vendor/package name")
	}
	if owned, err := cm.ownedBy(r.Context(), name); err != nil || owned {
		if err != nil {
			return err
		}
		return cm.serveHostedP2(w, r, name, dev)
	}
	if why := cm.m.Rules.Refuse(name); why != "" {
		return refuse(w, http.StatusNotFound, why)
	}
	res, err := cm.p2Meta(r.Context(), name, dev)
	if err != nil {
		return err
	}
	if cm.filters(r, name) {
		d, err := cm.cooledP2(r, res, name)
		if err != nil {
			return err
		}
		if cm.repo == nil {
			// Filtered from the stored p2 file alone, and so until the
			// next held-back version comes of age.
			cm.derived.Replayable(w, r, fetch.DerivedKey{ID: res.Entry.ID()}, cm.m.TTL, fetch.ReplayFrom{Key: cm.p2Key(name, dev), Res: res})
		}
		return fetch.ServeDoc(w, r, d, httpx.HeaderJSON, res)
	}
	if cm.repo == nil {
		// The stored p2 file as it is: the server may send it again
		// (fetch.Replayable).
		fetch.Replayable(w, cm.p2Key(name, dev), cm.m.TTL, res)
	}
	return cm.env.Core.ServeMeta(w, r, res, httpx.HeaderJSON)
}

// p2Key is the memory and storage key of a p2 file.
func (cm *composerMirror) p2Key(name string, dev bool) string {
	if dev {
		return cm.metaKey("p2/" + name + "~dev.json")
	}
	return cm.metaKey("p2/" + name + ".json")
}

func (cm *composerMirror) p2Meta(ctx context.Context, name string, dev bool) (fetch.MetaResult, error) {
	_, root, err := cm.upstreamRoot(ctx)
	if err != nil {
		return fetch.MetaResult{}, err
	}
	file := name + ".json"
	if dev {
		file = name + "~dev.json"
	}
	key := cm.p2Key(name, dev)
	return cm.env.Core.MetaOf(ctx, key, cm.m.TTL, func() *fetch.MetaSource {
		src := cm.source(key, strings.Replace(root.p2tmpl, "%package%", strings.TrimSuffix(file, ".json"), 1),
			func(b []byte, _ *http.Response) ([]byte, error) { return b, CheckP2(b) })
		src.Replaced = func(ctx context.Context, old, new []byte) {
			for _, d := range ChangedDists(old, new, name) {
				typ := d.Type
				if typ == "" {
					typ = "zip"
				}
				cm.env.Core.DropFile(ctx, storage.Join(cm.env.DistPrefix, cm.m.Name, name, d.Version, "ref"+MirrorReference(d.Reference)+"."+typ))
			}
		}
		return src
	})
}

// dist serves /zipball/{vendor}/{package}/{version}/ref{reference}.{type}.
// The object key is the URL's own path, so a stored dist is served without
// metadata; a missing one is resolved in the mirrored metadata (stable and
// dev) and only a URL found there is downloaded.
func (cm *composerMirror) dist(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("vendor") + "/" + r.PathValue("package")
	version, file := r.PathValue("version"), r.PathValue("file")
	ref, typ, ok := ParseDistPath(version, file)
	if !ValidName(name) || !ok {
		return httpx.NewError(http.StatusNotFound, "not a dist URL of this mirror: expected /zipball/vendor/package/version/ref<reference>.<type>")
	}
	if owned, err := cm.ownedBy(r.Context(), name); err != nil || owned {
		if err != nil {
			return err
		}
		return cm.hostedDist(w, r, name, version, ref, typ)
	}
	if why := cm.m.Rules.Refuse(name); why != "" {
		return refuse(w, http.StatusNotFound, why)
	}
	if cm.filters(r, name) {
		if err := cm.heldBack(w, r, name, version, ref); err != nil {
			var he *httpx.HTTPError
			if errors.As(err, &he) && he.Code == http.StatusForbidden {
				return refuse(w, http.StatusForbidden, he.Msg)
			}
			return err // upstream trouble: not a refusal
		}
	}
	key := storage.Join(cm.env.DistPrefix, cm.m.Name, name, version, file)
	return cm.env.Core.ServeFile(w, r, key, func(ctx context.Context) (fetch.FileSource, error) {
		// Stable versions first: most dists are found there, and the ~dev
		// file is fetched only when they are not.
		var versions []Version
		var firstErr error
		found := false
		for _, dev := range []bool{false, true} {
			res, err := cm.p2Meta(ctx, name, dev)
			if err != nil {
				if !errors.Is(err, httpx.ErrNotFound) && firstErr == nil {
					firstErr = err
				}
				continue
			}
			found = true
			vs, err := fetch.Parsed(cm.env.Core, res.Entry, func(b []byte) ([]Version, error) { return Expand(b, name) })
			if err != nil {
				return fetch.FileSource{}, &httpx.UpstreamError{Status: http.StatusBadGateway, Msg: fmt.Sprintf("metadata of %s: %v", name, err)}
			}
			versions = append(versions, vs...)
			if d, ok := FindDist(versions, version, ref); ok && d.Version == version {
				break // an exact match: the ~dev file cannot do better
			}
		}
		if !found {
			if firstErr != nil {
				return fetch.FileSource{}, firstErr
			}
			return fetch.FileSource{}, httpx.ErrNotFound
		}
		d, ok := FindDist(versions, version, ref)
		if !ok || d.Version == "" {
			if firstErr != nil {
				return fetch.FileSource{}, firstErr
			}
			return fetch.FileSource{}, httpx.NewError(http.StatusNotFound, fmt.Sprintf("no dist of %s with version %s and reference %s in the mirrored metadata", name, httpx.QuoteName(version), httpx.QuoteName(ref)))
		}
		// A dist is stored once, under the version and type the metadata
		// gives: any other version segment or type that names the same
		// reference is redirected there, so that clients cannot multiply
		// stored copies by varying the URL.
		canonType := d.Type
		if canonType == "" {
			canonType = "zip"
		}
		if d.Version != version || canonType != typ {
			prefix := httpx.MountPrefix(r, cm.m.Name)
			return fetch.FileSource{}, &httpx.RedirectTo{URL: prefix + "/zipball/" + name + "/" + d.Version + "/ref" + ref + "." + canonType}
		}
		src := fetch.FileSource{URL: d.URL, Client: cm.client}
		if sum, err := fetch.HexDigest("sha1", d.Shasum); err == nil {
			src.Digests = []fetch.Digest{sum}
		} else {
			// No digest to verify against: check at least that the archive
			// is complete and intact before it is stored.
			src.Check = fetch.ArchiveCheck(canonType)
		}
		return src, nil
	})
}
