package fetch

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/mirror-proxy/mirror-proxy/coord"
	"github.com/mirror-proxy/mirror-proxy/hosted"
	"github.com/mirror-proxy/mirror-proxy/httpx"
	"github.com/mirror-proxy/mirror-proxy/storage"
	"github.com/mirror-proxy/mirror-proxy/storage/cas"
)

// Hosted packages: a mirror with "hosted": true accepts uploads (the
// ecosystems' own publish APIs, in mirror/<ecosystem>/publish.go)
// and serves what was published from the same URLs as what it mirrors.
// A published name is owned: its metadata and files come only from
// <ARTIFACT_PREFIX>/<mirror>/, never from the upstream.

// The Redis lease is the lock of index updates.
var _ cas.Locker = (*coord.Coordinator)(nil)

// NewRepo opens the hosted repository kept under prefix
// (<ARTIFACT_PREFIX>/<mirror>), whose copies are fresh for ttl.
func (c *Core) NewRepo(prefix string, ttl time.Duration) *hosted.Repo {
	o := hosted.Options{Store: c.store, Prefix: prefix, TTL: ttl}
	if co := c.coord; co != nil {
		// Index updates are serialised through Redis: versitygw (and
		// other stores) do not check If-Match atomically. With Redis down
		// an upload is refused (503) rather than risk losing a version.
		o.Lock = co
		o.Notify = func(ctx context.Context, key string) { co.Invalidate(ctx, c.id+" "+key) }
	}
	r := hosted.New(o)
	c.addRepo(r)
	return r
}

// SpoolDir is where uploads and large downloads are spooled: beside the
// disk cache (a finished file is linked in, not copied), else the
// system's temporary directory.
func (c *Core) SpoolDir() string { return c.spoolDir }

// addRepo makes a hosted repository follow other replicas' invalidations.
func (c *Core) addRepo(r *hosted.Repo) {
	c.reposMu.Lock()
	defer c.reposMu.Unlock()
	c.repos = append(c.repos, r)
}

func (c *Core) eachRepo(fn func(*hosted.Repo)) {
	c.reposMu.Lock()
	rs := c.repos
	c.reposMu.Unlock()
	for _, r := range rs {
		fn(r)
	}
}

// ServeHostedFile serves a published file (key relative to the
// repository): from the disk cache or storage, never an upstream.
func (c *Core) ServeHostedFile(w http.ResponseWriter, r *http.Request, repo *hosted.Repo, path string) error {
	key := repo.Key(path)
	return c.ServeFile(w, r, key, func(ctx context.Context) (FileSource, error) {
		_, err := c.store.Stat(ctx, key)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			return FileSource{}, httpx.NewError(http.StatusNotFound, "no such published file")
		case err != nil:
			return FileSource{}, &httpx.UpstreamError{Status: http.StatusServiceUnavailable, RetryAfter: "5", Msg: "storage unavailable: " + err.Error()}
		}
		// It is there, but could not be read a moment ago.
		return FileSource{}, &httpx.UpstreamError{Status: http.StatusServiceUnavailable, RetryAfter: "5", Msg: "storage read failed; retry shortly"}
	})
}

// HostedEntry is a MetaResult for a document rendered from a hosted
// index: its Last-Modified is the index's.
func HostedEntry(mod time.Time) MetaResult {
	if mod.IsZero() {
		mod = time.Unix(0, 0)
	}
	e := (&MetaEntry{header: envelope{Fetched: mod.Unix()}}).finish()
	return MetaResult{Entry: e}
}
