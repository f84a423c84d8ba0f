// Package hosted keeps the packages an organisation publishes itself,
// under <STORAGE_AWS_ARTIFACT_PREFIX>/<mirror>/ in storage: files written
// create-only under content-addressed keys, one index object per package
// (so that reading never LISTs), and the list of names the repository
// owns. Indexes are changed only through conditional writes (storage/cas),
// so that racing publishers on several replicas never lose a version.
// What an index holds is the ecosystem's business: this package moves
// bytes, caches them for a TTL and tells the other replicas when they
// change. It knows no ecosystem's protocol; its errors carry the HTTP
// status they are answered with (httpx.ErrorOf reads it), and the
// ecosystems read uploads with its upload package.
package hosted

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/mirror-proxy/mirror-proxy/httpx"
	"github.com/mirror-proxy/mirror-proxy/storage"
	"github.com/mirror-proxy/mirror-proxy/storage/cas"
)

// statusError is an error that knows the status it is answered with.
type statusError struct {
	msg    string
	status int
}

func (e *statusError) Error() string   { return e.msg }
func (e *statusError) HTTPStatus() int { return e.status }

// ErrUnavailable: storage could not be reached; nothing was changed (503).
var ErrUnavailable error = &statusError{"hosted storage unavailable", http.StatusServiceUnavailable}

// ErrLockUnavailable: the lock that serialises index updates across
// replicas (Redis) could not be taken; nothing was changed (503).
var ErrLockUnavailable error = &statusError{"the lock of hosted index updates (Redis) is unavailable", http.StatusServiceUnavailable}

// ErrIndexFull: the change would make a package's index larger than
// maxIndexBytes (which reading would cut); nothing was changed (413).
var ErrIndexFull error = &statusError{"the package's index would exceed 32 MiB", http.StatusRequestEntityTooLarge}

// ErrConflict: a file is already stored under a path with other bytes (409).
var ErrConflict error = &statusError{"another file is stored under that name", http.StatusConflict}

// maxIndexBytes caps an index object as read (a package with thousands of
// versions stays far below it).
const maxIndexBytes = 32 << 20

// Repo is one hosted repository.
type Repo struct {
	store  storage.Store
	prefix string // <artifact prefix>/<mirror>
	// lock, when set, serialises index updates across replicas (a Redis
	// lease): needed on stores whose If-Match is not atomic.
	lock cas.Locker
	ttl  time.Duration
	// notify tells the other replicas that a key changed (Redis); nil: none.
	notify func(ctx context.Context, key string)
	now    func() time.Time

	sf      singleflight.Group
	mu      sync.Mutex
	names   *namesState
	indexes map[string]*Index // by name; entries expire after ttl
}

// Options configure a Repo.
type Options struct {
	Store storage.Store
	// Prefix is "<artifact prefix>/<mirror>".
	Prefix string
	Lock   cas.Locker
	// TTL bounds how long a replica serves its copy of an index or of the
	// names without reading storage again (other replicas' publishes are
	// seen within it without Redis, at once with it).
	TTL    time.Duration
	Notify func(ctx context.Context, key string)
}

// New returns the repository kept under o.Prefix.
func New(o Options) *Repo {
	if o.TTL <= 0 {
		o.TTL = time.Minute
	}
	return &Repo{store: o.Store, prefix: o.Prefix, lock: o.Lock, ttl: o.TTL, notify: o.Notify, now: time.Now,
		indexes: map[string]*Index{}}
}

// Key is the storage key of a path inside the repository.
func (r *Repo) Key(path string) string { return storage.Join(r.prefix, path) }

func (r *Repo) namesKey() string            { return r.prefix + "/names.json" }
func (r *Repo) indexKey(name string) string { return r.prefix + "/index/" + name + ".json" }

// Names is the set of names the repository owns, as a sorted list and a
// set; Gen changes whenever the list does.
type Names struct {
	List []string
	Set  map[string]bool
	Gen  string // the stored object's ETag ("" when nothing is published)
}

type namesState struct {
	names  *Names
	loaded time.Time
}

// Names returns the owned names: from memory within the TTL, else from
// storage. When storage fails, the last names read are returned (stale)
// with no error; a replica that never read them gets ErrUnavailable, so
// that it never serves an upstream's version of a name it might own.
func (r *Repo) Names(ctx context.Context) (*Names, error) {
	r.mu.Lock()
	st := r.names
	r.mu.Unlock()
	if st != nil && r.now().Sub(st.loaded) < r.ttl {
		return st.names, nil
	}
	v, err, _ := r.sf.Do("names", func() (any, error) {
		b, info, err := r.read(ctx, r.namesKey())
		if errors.Is(err, storage.ErrNotFound) {
			b, err = nil, nil
		}
		if err != nil {
			return nil, err
		}
		n := &Names{Set: map[string]bool{}, Gen: info.ETag}
		if len(b) > 0 {
			if err := json.Unmarshal(b, &n.List); err != nil {
				return nil, fmt.Errorf("%s is damaged: %w", r.namesKey(), err)
			}
		}
		for _, x := range n.List {
			n.Set[x] = true
		}
		r.mu.Lock()
		r.names = &namesState{names: n, loaded: r.now()}
		r.mu.Unlock()
		return n, nil
	})
	if err != nil {
		if st != nil {
			return st.names, nil
		}
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return v.(*Names), nil
}

// Owns reports whether name is published on repo (nil: a mirror that
// hosts nothing), so that nothing of it comes from the upstream. Without
// an upstream (noUpstream) every other name is a 404. A replica that
// cannot read the owned names and never could answers 503 rather than
// risk serving an upstream's package under a private name.
func Owns(ctx context.Context, repo *Repo, noUpstream bool, name string) (bool, error) {
	if repo == nil {
		return false, nil
	}
	owned, err := repo.Owns(ctx, name)
	if err != nil {
		return false, err
	}
	if !owned && noUpstream {
		return false, &statusError{fmt.Sprintf("%s is not published on this repository", httpx.QuoteName(name)), http.StatusNotFound}
	}
	return owned, nil
}

// Owns reports whether name has been published here (it is then never
// taken from an upstream).
func (r *Repo) Owns(ctx context.Context, name string) (bool, error) {
	n, err := r.Names(ctx)
	if err != nil {
		return false, err
	}
	return n.Set[name], nil
}

// Index is one package's index object as stored.
type Index struct {
	Name    string
	Body    []byte // nil: no index (never published)
	ETag    string
	ModTime time.Time
	loaded  time.Time
	// Parsed is for the caller: a value derived from Body, cached with it.
	parsedMu sync.Mutex
	parsed   any
}

// Parsed returns fn(Body), computed once per stored version.
func (x *Index) Parsed(fn func([]byte) (any, error)) (any, error) {
	x.parsedMu.Lock()
	defer x.parsedMu.Unlock()
	if x.parsed != nil {
		return x.parsed, nil
	}
	v, err := fn(x.Body)
	if err == nil {
		x.parsed = v
	}
	return v, err
}

// Index returns the index object of name (Body nil when there is none),
// from memory within the TTL, else from storage; a stale copy when
// storage fails.
func (r *Repo) Index(ctx context.Context, name string) (*Index, error) {
	r.mu.Lock()
	x := r.indexes[name]
	r.mu.Unlock()
	if x != nil && r.now().Sub(x.loaded) < r.ttl {
		return x, nil
	}
	v, err, _ := r.sf.Do("index:"+name, func() (any, error) {
		b, info, err := r.read(ctx, r.indexKey(name))
		if errors.Is(err, storage.ErrNotFound) {
			b, err = nil, nil
		}
		if err != nil {
			return nil, err
		}
		nx := &Index{Name: name, Body: b, ETag: info.ETag, ModTime: info.ModTime, loaded: r.now()}
		r.mu.Lock()
		if len(r.indexes) > 10000 {
			r.indexes = map[string]*Index{} // bounded: re-read what is used
		}
		r.indexes[name] = nx
		r.mu.Unlock()
		return nx, nil
	})
	if err != nil {
		if x != nil {
			return x, nil
		}
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return v.(*Index), nil
}

func (r *Repo) read(ctx context.Context, key string) ([]byte, storage.Info, error) {
	rc, info, err := r.store.Get(ctx, key, storage.Whole)
	if err != nil {
		return nil, info, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxIndexBytes))
	return b, info, err
}

// Stat tells whether a published file is there (storage.ErrNotFound when
// it is not).
func (r *Repo) Stat(ctx context.Context, path string) (storage.Info, error) {
	return r.store.Stat(ctx, r.Key(path))
}

// PutFile stores a published file under path (relative to the
// repository) from r, create-only. Callers content-address their paths
// (the path holds the file's digest), so an existing object holds the
// same bytes and is kept (an identical retry); as a guard, one of another
// size is ErrConflict.
func (r *Repo) PutFile(ctx context.Context, path string, body io.Reader, size int64, contentType string) error {
	return r.putFile(ctx, path, body, size, storage.PutOptions{Size: size, CreateOnly: true, ContentType: contentType})
}

// PutSpooled is PutFile for a spooled upload, stored with its sha256 so
// that reads of it are verified.
func (r *Repo) PutSpooled(ctx context.Context, path string, sp *Spooled, contentType string) error {
	return r.putFile(ctx, path, sp.Reader(), sp.Size, storage.PutOptions{Size: sp.Size, CreateOnly: true,
		ContentType: contentType, Digest: "sha256:" + sp.SHA256})
}

func (r *Repo) putFile(ctx context.Context, path string, body io.Reader, size int64, opts storage.PutOptions) error {
	err := r.store.Put(ctx, r.Key(path), body, opts)
	if errors.Is(err, storage.ErrExists) {
		info, serr := r.store.Stat(ctx, r.Key(path))
		if serr == nil && info.Size != size {
			return fmt.Errorf("%w: %s", ErrConflict, path)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: storing %s: %v", ErrUnavailable, path, err)
	}
	return nil
}

// Update changes name's index with change (old is nil for a new package)
// under a conditional write, retried when another writer got there first.
// An error returned by change ends the update with nothing written and is
// returned as it is; a change that returns old unchanged (an identical
// retry) writes nothing and succeeds.
//
// Ownership is claimed before the index is written, never after: the
// name's first publish checks its change against the index as it is, adds
// the name to the owned names, then writes the index. A fault between the
// two leaves the name owned with nothing published (no version of it is
// taken from the upstream meanwhile), and a retry publishes; there is no
// interleaving that leaves a published version under a name not owned.
func (r *Repo) Update(ctx context.Context, name string, change func(old []byte) ([]byte, error)) error {
	key := r.indexKey(name)
	if n, err := r.Names(ctx); err != nil || !n.Set[name] {
		// A refused change claims nothing: try it on the index as stored.
		old, _, err := r.read(ctx, key)
		if errors.Is(err, storage.ErrNotFound) {
			old, err = nil, nil
		}
		if err != nil {
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		if _, err := change(old); err != nil {
			return err
		}
		if err := r.own(ctx, name); err != nil {
			return err
		}
	}
	var changeErr error
	err := cas.Update(ctx, r.store, key, r.lock, func(old []byte) ([]byte, error) {
		b, err := change(old)
		if err == nil && len(b) > maxIndexBytes {
			err = ErrIndexFull
		}
		changeErr = err
		return b, err
	})
	if err != nil {
		if changeErr != nil && errors.Is(err, changeErr) {
			return changeErr
		}
		return unavailable(err)
	}
	r.forget(key)
	r.tell(ctx, key)
	return nil
}

// unavailable names what could not be reached: the lock or storage.
func unavailable(err error) error {
	if errors.Is(err, cas.ErrLock) {
		return fmt.Errorf("%w: %v", ErrLockUnavailable, err)
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}

// own adds name to the owned names (once).
func (r *Repo) own(ctx context.Context, name string) error {
	if n, err := r.Names(ctx); err == nil && n.Set[name] {
		return nil
	}
	key := r.namesKey()
	err := cas.Update(ctx, r.store, key, r.lock, func(old []byte) ([]byte, error) {
		var list []string
		if len(old) > 0 {
			if err := json.Unmarshal(old, &list); err != nil {
				return nil, fmt.Errorf("%s is damaged: %w", key, err)
			}
		}
		if i, found := slices.BinarySearch(list, name); !found {
			list = slices.Insert(list, i, name)
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", " ")
		err := enc.Encode(list)
		return buf.Bytes(), err
	})
	if err != nil {
		return unavailable(err)
	}
	r.forget(key)
	r.tell(ctx, key)
	return nil
}

func (r *Repo) tell(ctx context.Context, key string) {
	if r.notify != nil {
		r.notify(ctx, key)
	}
}

// forget drops the cached copy of an object of this repository.
func (r *Repo) forget(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if key == r.namesKey() {
		r.names = nil
		return
	}
	if name, ok := strings.CutPrefix(key, r.prefix+"/index/"); ok {
		delete(r.indexes, strings.TrimSuffix(name, ".json"))
	}
}

// Invalidated handles another replica's "key changed" message: a key of
// this repository is dropped from memory and read again when next asked.
func (r *Repo) Invalidated(key string) {
	if strings.HasPrefix(key, r.prefix+"/") {
		r.forget(key)
	}
}

// Forget drops every cached copy (after Redis messages may have been lost).
func (r *Repo) Forget() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.names = nil
	r.indexes = map[string]*Index{}
}
