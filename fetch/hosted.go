package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"time"

	"github.com/mirror-proxy/mirror-proxy/coord"
	"github.com/mirror-proxy/mirror-proxy/hosted"
	"github.com/mirror-proxy/mirror-proxy/storage"
	"github.com/mirror-proxy/mirror-proxy/storage/cas"
)

// Hosted packages: a mirror with "hosted": true accepts uploads (the
// ecosystems' own publish APIs, in mirror/<ecosystem>/publish.go)
// and serves what was published from the same URLs as what it mirrors.
// A published name is owned: its metadata and files come only from
// <ARTIFACT_PREFIX>/<mirror>/, never from the upstream.

// DefaultUploadMax is UPLOAD_MAX_BYTES' default.
const DefaultUploadMax = 512 << 20

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

// Upload is a multipart upload as read: its text fields and its one file,
// spooled to a temporary file (never held in memory).
type Upload struct {
	Fields   map[string]string
	File     *hosted.Spooled
	Filename string
}

func (u *Upload) Close() {
	if u.File != nil {
		u.File.Remove()
	}
}

// Bounds on what an upload's form may hold besides the file.
const (
	maxFieldBytes = 64 << 10
	maxFields     = 256
)

// BadRequest is a 400 whose message names the problem.
func BadRequest(format string, a ...any) error {
	return NewError(http.StatusBadRequest, fmt.Sprintf(format, a...))
}

// SpoolBody copies a request body (an upload that is not multipart, such
// as npm publish's JSON) to a temporary file: max bytes at most (413),
// as long as it keeps arriving (idle bounds its silences).
func (c *Core) SpoolBody(w http.ResponseWriter, r *http.Request, max int64, idle time.Duration) (*hosted.Spooled, error) {
	if r.ContentLength > max {
		return nil, NewError(http.StatusRequestEntityTooLarge, fmt.Sprintf("upload of %d bytes is larger than UPLOAD_MAX_BYTES (%d)", r.ContentLength, max))
	}
	if db, ok := r.Body.(idleBody); ok {
		db.SetIdle(idle)
	}
	dir := c.spoolDir
	_ = os.MkdirAll(dir, 0o700)
	f, err := hosted.Spool(http.MaxBytesReader(w, r.Body, max), dir, max)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) || errors.Is(err, hosted.ErrTooLarge) {
		return nil, NewError(http.StatusRequestEntityTooLarge, fmt.Sprintf("upload larger than UPLOAD_MAX_BYTES (%d)", max))
	}
	if err != nil {
		return nil, BadRequest("the upload was not received completely: %v", err)
	}
	return f, nil
}

// idleBody is a request body whose read deadline can become an idle
// limit (the server's guard makes bodies so).
type idleBody interface{ SetIdle(time.Duration) }

// ReadUpload reads a multipart/form-data request: fileField's part is
// spooled (max bytes at most, else 413), other parts kept as text. The
// body may take as long as it needs while it keeps arriving: idle bounds
// its silences.
func (c *Core) ReadUpload(w http.ResponseWriter, r *http.Request, fileField string, max int64, idle time.Duration) (*Upload, error) {
	if r.ContentLength > max+(1<<20) {
		return nil, NewError(http.StatusRequestEntityTooLarge, fmt.Sprintf("upload of %d bytes is larger than UPLOAD_MAX_BYTES (%d)", r.ContentLength, max))
	}
	if db, ok := r.Body.(idleBody); ok {
		db.SetIdle(idle)
	}
	r.Body = http.MaxBytesReader(w, r.Body, max+(1<<20))
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "multipart/form-data" {
		return nil, BadRequest("expected a multipart/form-data upload with the file in the field %q", fileField)
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, BadRequest("malformed multipart body: %v", err)
	}
	u := &Upload{Fields: map[string]string{}}
	fail := func(err error) (*Upload, error) {
		u.Close()
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) || errors.Is(err, hosted.ErrTooLarge) {
			return nil, NewError(http.StatusRequestEntityTooLarge, fmt.Sprintf("upload larger than UPLOAD_MAX_BYTES (%d)", max))
		}
		var he *HTTPError
		if errors.As(err, &he) {
			return nil, he
		}
		return nil, BadRequest("the upload was not received completely: %v", err)
	}
	for n := 0; ; n++ {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fail(err)
		}
		if n >= maxFields {
			return fail(BadRequest("too many form fields (at most %d)", maxFields))
		}
		name := p.FormName()
		if name == fileField {
			if u.File != nil {
				return fail(BadRequest("more than one %q part", fileField))
			}
			dir := c.spoolDir
			_ = os.MkdirAll(dir, 0o700)
			u.File, err = hosted.Spool(p, dir, max)
			if err != nil {
				return fail(err)
			}
			u.Filename = p.FileName()
			continue
		}
		b, err := io.ReadAll(io.LimitReader(p, maxFieldBytes+1))
		if err != nil {
			return fail(err)
		}
		if len(b) > maxFieldBytes {
			return fail(BadRequest("form field %q is larger than %d bytes", Truncate(name, 100), maxFieldBytes))
		}
		if _, dup := u.Fields[name]; !dup { // repeated fields (classifiers): the first is kept
			u.Fields[name] = string(b)
		}
	}
	if u.File == nil {
		return fail(BadRequest("the upload has no %q file part", fileField))
	}
	if u.File.Size == 0 {
		return fail(BadRequest("the uploaded file is empty"))
	}
	return u, nil
}

// Owns reports whether name is published on repo (nil: a mirror that
// hosts nothing), so that nothing of it comes from the upstream. Without
// an upstream every other name is a 404. A replica that cannot read the
// owned names and never could answers 503 rather than risk serving an
// upstream's package under a private name.
func Owns(ctx context.Context, repo *hosted.Repo, noUpstream bool, name string) (bool, error) {
	if repo == nil {
		return false, nil
	}
	owned, err := repo.Owns(ctx, name)
	if err != nil {
		return false, err
	}
	if !owned && noUpstream {
		return false, NewError(http.StatusNotFound, fmt.Sprintf("%s is not published on this repository", QuoteName(name)))
	}
	return owned, nil
}

// ServeHostedFile serves a published file (key relative to the
// repository): from the disk cache or storage, never an upstream.
func (c *Core) ServeHostedFile(w http.ResponseWriter, r *http.Request, repo *hosted.Repo, path string) error {
	key := repo.Key(path)
	return c.ServeFile(w, r, key, func(ctx context.Context) (FileSource, error) {
		_, err := c.store.Stat(ctx, key)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			return FileSource{}, NewError(http.StatusNotFound, "no such published file")
		case err != nil:
			return FileSource{}, &UpstreamError{Status: http.StatusServiceUnavailable, RetryAfter: "5", Msg: "storage unavailable: " + err.Error()}
		}
		// It is there, but could not be read a moment ago.
		return FileSource{}, &UpstreamError{Status: http.StatusServiceUnavailable, RetryAfter: "5", Msg: "storage read failed; retry shortly"}
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
