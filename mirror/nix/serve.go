package nix

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
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
			return "# nix.conf\nsubstituters = " + u + "\ntrusted-public-keys = cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="
		},
		Name:       "nix",
		DefaultURL: "https://cache.nixos.org",
		// Only nix-cache-info is revalidated after it; narinfos are
		// immutable once found.
		DefaultTTL: time.Hour,
		Hosts:      true,
		New:        newMirror,
	})
}

// nixMirror serves one binary cache under /N/:
//
//	/N/nix-cache-info         the cache's parameters
//	/N/<hash>.narinfo         a store path's metadata (signed)
//	/N/nar/<filehash>.nar.xz  its NAR, verified against the file hash
//	/N/<hash>.ls, /N/log/<drv>  listings and build logs, passed through
//
// and, when hosted, PUT of each of them (what nix copy --to http://...
// sends), kept under the artifact prefix and served before the upstream.
type nixMirror struct {
	env    *mirror.Env
	m      fetch.Mirror
	client *http.Client
	repo   *hosted.Repo
}

var _ mirror.Ecosystem = (*nixMirror)(nil)

func newMirror(env *mirror.Env) mirror.Ecosystem {
	return &nixMirror{env: env, m: env.Mirror, client: env.Client, repo: env.Repo}
}

// Routes registers the mirror's routes.
func (nm *nixMirror) Routes(rt mirror.Router) {
	rt.Read("/nix-cache-info", nm.cacheInfo)
	rt.Read("/{file}", nm.top)
	rt.Read("/nar/{file}", nm.nar)
	rt.Read("/nar/{hash}/{file}", nm.verifiedNar)
	rt.Read("/log/{file}", nm.log)
	if nm.repo != nil {
		rt.Write(http.MethodPut, "/nix-cache-info", nm.putCacheInfo)
		rt.Write(http.MethodPut, "/{file}", nm.put)
		rt.Write(http.MethodPut, "/nar/{file}", nm.put)
		rt.Write(http.MethodPut, "/log/{file}", nm.put)
	}
}

// narinfoTTL: a narinfo found never changes (its store path is
// immutable); it is never revalidated in practice.
const narinfoTTL = 100 * 365 * 24 * time.Hour

var (
	hvCacheInfo = []string{"text/x-nix-cache-info"}
	hvNarInfo   = []string{"text/x-nix-narinfo"}
)

// hostedCacheInfo is what a cache without upstream says of itself.
const hostedCacheInfo = "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n"

var hostedInfoDoc = fetch.NewDoc([]byte(hostedCacheInfo), "i")

func (nm *nixMirror) cacheInfo(w http.ResponseWriter, r *http.Request) error {
	if nm.m.URL == "" {
		return fetch.ServeDoc(w, r, hostedInfoDoc, hvCacheInfo, fetch.HostedEntry(time.Time{}))
	}
	key := nm.env.MetaKey("nix-cache-info")
	res, err := nm.env.Core.MetaOf(r.Context(), key, nm.m.TTL, func() *fetch.MetaSource {
		return &fetch.MetaSource{
			Key: key, URL: nm.m.URL + "/nix-cache-info",
			Client: nm.client, TTL: nm.m.TTL, NotFoundTTL: nm.m.NotFoundTTL,
			Transform: func(b []byte, _ *http.Response) ([]byte, error) {
				if !strings.Contains(string(b), "StoreDir:") {
					return nil, errors.New("nix-cache-info without StoreDir")
				}
				return b, nil
			},
		}
	})
	if err != nil && nm.repo != nil {
		// A hosted cache does not depend on the upstream: its own
		// nix-cache-info when the upstream's is unavailable.
		w.Header().Set("X-Mirror-Upstream", "unavailable")
		return fetch.ServeDoc(w, r, hostedInfoDoc, hvCacheInfo, fetch.HostedEntry(time.Time{}))
	}
	if err != nil {
		return err
	}
	return nm.env.Core.ServeMeta(w, r, res, hvCacheInfo)
}

// top serves <hash>.narinfo and <hash>.ls.
func (nm *nixMirror) top(w http.ResponseWriter, r *http.Request) error {
	file := r.PathValue("file")
	hash, ext, _ := strings.Cut(file, ".")
	if !ValidHash(hash) || (ext != "narinfo" && ext != "ls") {
		return httpx.NewError(http.StatusNotFound, "not a file of a Nix binary cache: expected <hash>.narinfo, <hash>.ls, nar/..., log/...")
	}
	if ext == "ls" {
		return nm.passThrough(w, r, file)
	}
	key := nm.env.MetaKey(file)
	// Found upstream and in memory: the warm path, no storage call.
	if res, ok := nm.env.Core.FreshInMemory(key, narinfoTTL); ok {
		return nm.env.Core.ServeMeta(w, r, res, hvNarInfo)
	}
	if served, err := nm.serveHosted(w, r, file); served || err != nil {
		return err
	}
	if nm.m.URL == "" {
		return httpx.NewError(http.StatusNotFound, "no such store path in this cache")
	}
	res, err := nm.env.Core.Meta(r.Context(), nm.narinfoSource(hash))
	if err != nil && nm.repo != nil && httpx.IsPublisher(r) && !httpx.IsNotFound(err) {
		// nix copy asks the cache for each path's narinfo before it
		// uploads it: with the upstream unavailable, a client that may
		// publish here is told what the hosted cache holds (not this path),
		// so that publishing does not depend on the upstream. Readers
		// still get the upstream's failure, never a 404 for an outage.
		w.Header().Set("X-Mirror-Upstream", "unavailable")
		return httpx.NewError(http.StatusNotFound, "not in this hosted cache (its upstream is unavailable)")
	}
	if err != nil {
		return err
	}
	return nm.env.Core.ServeMeta(w, r, res, hvNarInfo)
}

// narinfoSource is where an upstream narinfo comes from. It is refused
// unless it gives the NAR's NarHash and NarSize and a URL this mirror can
// verify; its URL becomes nar/<hash>/<file>, so that the NAR's download
// is checked against this narinfo (verifiedNar). The URL is not part of
// what a narinfo's signature covers.
func (nm *nixMirror) narinfoSource(hash string) *fetch.MetaSource {
	return &fetch.MetaSource{
		Key: nm.env.MetaKey(hash + ".narinfo"), URL: nm.m.URL + "/" + hash + ".narinfo",
		Client: nm.client, TTL: narinfoTTL, NotFoundTTL: nm.m.NotFoundTTL,
		Transform: func(b []byte, _ *http.Response) ([]byte, error) {
			n, err := ParseNarInfo(b, hash)
			if err != nil {
				return nil, err
			}
			if err := checkNarURL(n); err != nil {
				return nil, err
			}
			if n.NarHash == nil || n.NarSize == 0 {
				return nil, errors.New("narinfo without NarHash and NarSize: the proxy could not verify its NAR")
			}
			return rewriteURL(b, "nar/"+hash+"/"+n.NarFile()), nil
		},
	}
}

// rewriteURL replaces a narinfo's URL line.
func rewriteURL(b []byte, url string) []byte {
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "URL: ") {
			lines[i] = "URL: " + url
		}
	}
	return []byte(strings.Join(lines, "\n"))
}

// verifiedNar serves nar/<hash>/<file>, the NAR of the narinfo of <hash>
// (as the proxy rewrote its URL): stored under a key that holds the
// narinfo's NarHash, or downloaded, checked against the FileHash its name
// gives and, decompressed, against the narinfo's NarHash and NarSize
// before it is stored. A NAR that fails drops the narinfo too: it is
// fetched again next time (an upstream that repairs it is heard), never
// kept for good.
func (nm *nixMirror) verifiedNar(w http.ResponseWriter, r *http.Request) error {
	hash, file := r.PathValue("hash"), r.PathValue("file")
	sum := NarFileHash(file)
	if !ValidHash(hash) || sum == nil {
		return httpx.NewError(http.StatusNotFound, "not a NAR of a Nix binary cache: expected nar/<hash>/<file hash>.nar[.xz|.zst|.bz2]")
	}
	if nm.m.URL == "" {
		return httpx.NewError(http.StatusNotFound, "no such NAR in this cache")
	}
	src := nm.narinfoSource(hash)
	res, err := nm.env.Core.MetaOf(r.Context(), src.Key, narinfoTTL, func() *fetch.MetaSource { return src })
	if err != nil {
		return err
	}
	v, err := fetch.Parsed(nm.env.Core, res.Entry, func(b []byte) (NarInfo, error) { return ParseNarInfo(b, hash) })
	if err != nil {
		return &httpx.UpstreamError{Status: http.StatusBadGateway, Msg: fmt.Sprintf("stored narinfo of %s: %v", hash, err)}
	}
	n := v
	if n.NarFile() != file || n.NarHash == nil {
		return httpx.NewError(http.StatusNotFound, fmt.Sprintf("%s is not the NAR the narinfo of %s names", httpx.QuoteName(file), hash))
	}
	key := storage.Join(nm.env.DistPrefix, nm.m.Name, n.VerifiedKey())
	return nm.env.Core.ServeFile(w, r, key, func(ctx context.Context) (fetch.FileSource, error) {
		return fetch.FileSource{URL: nm.m.URL + "/nar/" + file, Client: nm.client,
			Digests: []fetch.Digest{{Alg: "sha256", Value: sum}},
			Check: func(ra io.ReaderAt, size int64) error {
				if err := n.CheckNar(ra, size); err != nil {
					nm.env.Core.DropMeta(context.WithoutCancel(ctx), src.Key)
					nm.env.Log.Warn("a NAR does not match its narinfo; the narinfo was dropped", "mirror", nm.m.Name, "hash", hash, "err", err)
					return err
				}
				return nil
			}}, nil
	})
}

// checkNarURL refuses a narinfo whose NAR this mirror could not verify:
// its URL must be a relative nar/<file hash>.nar[.ext] whose name agrees
// with FileHash.
func checkNarURL(n NarInfo) error {
	name, ok := strings.CutPrefix(n.URL, "nar/")
	if !ok || NarFileHash(name) == nil {
		return fmt.Errorf("narinfo URL %q is not nar/<file hash>.nar[.ext]: the proxy could not verify it", truncate(n.URL, 120))
	}
	if h, ok := strings.CutPrefix(n.FileHash, "sha256:"); ok && len(h) == 52 && !strings.HasPrefix(name, h+".") {
		return fmt.Errorf("narinfo URL %q does not match its FileHash %s", truncate(n.URL, 120), n.FileHash)
	}
	return nil
}

// serveHosted serves a published file when the cache is hosted and holds
// it.
func (nm *nixMirror) serveHosted(w http.ResponseWriter, r *http.Request, path string) (bool, error) {
	if nm.repo == nil {
		return false, nil
	}
	_, err := nm.repo.Stat(r.Context(), path)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return false, nil
	case err != nil:
		return true, &httpx.UpstreamError{Status: http.StatusServiceUnavailable, RetryAfter: "5", Msg: "storage unavailable: " + err.Error()}
	}
	if strings.HasSuffix(path, ".narinfo") {
		w.Header().Set("Content-Type", hvNarInfo[0])
	}
	return true, nm.env.Core.ServeHostedFile(w, r, nm.repo, path)
}

// nar serves a NAR: stored, published, or downloaded from the upstream's
// nar/ and verified against the sha256 its name gives (Nix names NARs by
// their file hash, which the narinfo's FileHash repeats) before it is
// stored.
func (nm *nixMirror) nar(w http.ResponseWriter, r *http.Request) error {
	file := r.PathValue("file")
	sum := NarFileHash(file)
	if sum == nil {
		return httpx.NewError(http.StatusNotFound, "not a NAR of a Nix binary cache: expected nar/<file hash>.nar[.xz|.zst|.bz2]")
	}
	if served, err := nm.serveHosted(w, r, "nar/"+file); served || err != nil {
		return err
	}
	if nm.m.URL == "" {
		return httpx.NewError(http.StatusNotFound, "no such NAR in this cache")
	}
	key := storage.Join(nm.env.DistPrefix, nm.m.Name, "nar", file)
	if r.Method == http.MethodHead && nm.repo != nil && httpx.IsPublisher(r) {
		// nix copy asks whether the cache holds a NAR (HEAD) before it
		// uploads it: answered from what the cache holds, without the
		// upstream, so that publishing does not depend on it.
		return nm.env.Core.ServeFile(w, r, key, func(context.Context) (fetch.FileSource, error) {
			return fetch.FileSource{}, httpx.NewError(http.StatusNotFound, "no such NAR in this cache")
		})
	}
	return nm.env.Core.ServeFile(w, r, key, func(context.Context) (fetch.FileSource, error) {
		return fetch.FileSource{URL: nm.m.URL + "/nar/" + file, Client: nm.client,
			Digests: []fetch.Digest{{Alg: "sha256", Value: sum}}}, nil
	})
}

func (nm *nixMirror) log(w http.ResponseWriter, r *http.Request) error {
	file := r.PathValue("file")
	if !logRe.MatchString(file) {
		return httpx.NewError(http.StatusNotFound, "not a build log name: expected log/<hash>-<name>.drv")
	}
	return nm.passThrough(w, r, "log/"+file)
}

// passThrough serves a file the cache only passes on (listings, logs):
// published, stored, or fetched unverified (nothing checks them, and
// nothing runs them).
func (nm *nixMirror) passThrough(w http.ResponseWriter, r *http.Request, path string) error {
	if served, err := nm.serveHosted(w, r, path); served || err != nil {
		return err
	}
	if nm.m.URL == "" {
		return httpx.NewError(http.StatusNotFound, "no such file in this cache")
	}
	key := storage.Join(nm.env.DistPrefix, nm.m.Name, path)
	return nm.env.Core.ServeFile(w, r, key, func(context.Context) (fetch.FileSource, error) {
		return fetch.FileSource{URL: nm.m.URL + "/" + path, Client: nm.client}, nil
	})
}

// putCacheInfo accepts nix copy's nix-cache-info and keeps nothing: the
// mirror's own (the upstream's, or a hosted cache's fixed one) is served.
func (nm *nixMirror) putCacheInfo(w http.ResponseWriter, r *http.Request) error {
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 64<<10))
	return httpx.NoContent(w, http.StatusOK)
}

// maxNarInfo bounds an uploaded narinfo (a store path with thousands of
// references stays far below).
const maxNarInfo = 1 << 20

// put stores what nix copy uploads: a NAR (its sha256 must be the one its
// name gives), a narinfo (for the hash it is named by, with a NAR URL the
// proxy can verify), a listing or a log. Objects are written create-only:
// store paths never change, so a second upload of one keeps the first.
func (nm *nixMirror) put(w http.ResponseWriter, r *http.Request) error {
	file := r.PathValue("file")
	var path, ctype string
	var sum []byte
	switch {
	case strings.HasSuffix(r.URL.Path, "/nar/"+file):
		if sum = NarFileHash(file); sum == nil {
			return httpx.BadRequest("not a NAR name: expected nar/<file hash>.nar[.ext]")
		}
		path, ctype = "nar/"+file, "application/x-nix-nar"
	case strings.HasSuffix(r.URL.Path, "/log/"+file):
		if !logRe.MatchString(file) {
			return httpx.BadRequest("not a build log name: expected log/<hash>-<name>.drv")
		}
		path, ctype = "log/"+file, "text/plain; charset=utf-8"
	default:
		hash, ext, _ := strings.Cut(file, ".")
		if !ValidHash(hash) || (ext != "narinfo" && ext != "ls") {
			return httpx.BadRequest("not a file of a Nix binary cache: expected <hash>.narinfo, <hash>.ls, nar/..., log/...")
		}
		path, ctype = file, "application/json"
		if ext == "narinfo" {
			ctype = hvNarInfo[0]
		}
	}
	sp, err := nm.env.Uploads.Body(w, r)
	if err != nil {
		return err
	}
	defer sp.Remove()
	if strings.HasSuffix(path, ".narinfo") {
		if sp.Size > maxNarInfo {
			return httpx.NewError(http.StatusRequestEntityTooLarge, "narinfo larger than 1 MiB")
		}
		b, err := io.ReadAll(sp.Reader())
		if err != nil {
			return err
		}
		hash, _, _ := strings.Cut(file, ".")
		n, err := ParseNarInfo(b, hash)
		if err == nil {
			err = checkNarURL(n)
		}
		if err != nil {
			return httpx.BadRequest("%v", err)
		}
	}
	if sum != nil {
		h := sha256.New()
		if _, err := io.Copy(h, sp.Reader()); err != nil {
			return err
		}
		if got := h.Sum(nil); string(got) != string(sum) {
			return httpx.BadRequest("the NAR's sha256 is not the one its name gives: the upload is damaged")
		}
	}
	// A store path's narinfo (or listing, or log) uploaded again keeps the
	// first, even when it differs (another signature): the path's NAR is
	// content-addressed, and the narinfo names it with its hash.
	if err := nm.repo.PutSpooled(r.Context(), path, sp, ctype); err != nil && !errors.Is(err, hosted.ErrConflict) {
		return err
	}
	return httpx.NoContent(w, http.StatusOK)
}
