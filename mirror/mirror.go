// Package mirror is the registry of ecosystems. Each ecosystem is one
// folder below mirror/ (its protocol, routes and handlers) that registers
// a Type from an init function; the server mounts every configured mirror
// through it and knows no ecosystem by name. Adding an ecosystem is its
// folder plus one import line in mirror/all (imported by cmd/mirror-proxy).
package mirror

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/mirror-proxy/mirror-proxy/audit"
	"github.com/mirror-proxy/mirror-proxy/fetch"
	"github.com/mirror-proxy/mirror-proxy/hosted"
	"github.com/mirror-proxy/mirror-proxy/hosted/upload"
	"github.com/mirror-proxy/mirror-proxy/httpx"
	"github.com/mirror-proxy/mirror-proxy/osv"
	"github.com/mirror-proxy/mirror-proxy/policy"
)

// Type is one ecosystem.
type Type struct {
	// Name is the "type" of MIRRORS entries ("composer", "pypi").
	Name string
	// DefaultURL is the upstream of a mirror whose entry gives no url
	// and is not hosted ("" : url is required).
	DefaultURL string
	// DefaultTTL is how long its metadata is fresh when neither the mirror
	// nor METADATA_TTL says.
	DefaultTTL time.Duration
	// DefaultFileHosts are hosts that every mirror of the type may
	// download files from besides its own (where public registries keep
	// their files); they are dialled at public addresses only.
	DefaultFileHosts []string
	// AdjustResponse, when set, sees every upstream response of the
	// type's mirrors before the core does (GitHub's rate limit on Composer
	// dists becomes a 429).
	AdjustResponse func(*http.Response)
	// Mounts are the path prefixes a mirror named name is served under;
	// nil means "/" + name.
	Mounts func(name string) []string
	// ReplayIgnores are request headers its clients send that none of its
	// handlers reads (npm's Npm-Session): a warm document may be replayed
	// to a request that carries them (see proxy/replay.go); any other
	// header makes a request take the full path.
	ReplayIgnores []string
	// OSVEcosystem is the type's ecosystem in OSV data ("npm", "PyPI"),
	// and OSVCompare orders its versions: both set, its mirrors may have
	// an advisories policy.
	OSVEcosystem string
	OSVCompare   osv.Compare
	// OSVNormalize maps OSV's package names as the type compares names
	// (nil: as given).
	OSVNormalize func(string) string
	// ParseDeny, when set, reads the type's deny rules (where its names
	// hold a ":", as Maven's group:artifact do); else policy.ParseDeny.
	ParseDeny func(string) (policy.Deny, error)
	// Options, when set, checks the type's own settings of a mirror
	// (fetch.Mirror.Options; Go's "sumdb"); without it a mirror of the
	// type may have none.
	Options func(map[string]json.RawMessage) error
	// Client is how a user points the type's client at a mirror served at
	// url (http://host/name, no trailing slash): shown on the status page.
	Client func(url string) string
	// Hosts: its mirrors may be "hosted" (accept uploads; Env.Repo is
	// set). Configuring "hosted" on another type is an error.
	Hosts bool
	// New builds the handlers of one mirror.
	New func(env *Env) Ecosystem
}

// Ecosystem serves one configured mirror.
type Ecosystem interface {
	// Routes registers the mirror's routes; it is called once per mount.
	Routes(rt Router)
}

// Router registers routes under one mount prefix. Paths use net/http's
// {name} wildcards, read with r.PathValue.
type Router interface {
	// Read registers a GET route that also answers HEAD.
	Read(path string, h httpx.Handler)
	// Handle registers a route of any method that needs read access only.
	Handle(method, path string, h httpx.Handler)
	// Write registers a route that changes what is stored (uploads): it
	// needs a token with the write scope.
	Write(method, path string, h httpx.Handler)
}

// Env is what an ecosystem gets to serve one mirror.
type Env struct {
	Core   *fetch.Core
	Mirror fetch.Mirror
	// Client fetches from the mirror's upstream and the file hosts its
	// metadata may name (credentials and host policy applied).
	Client *http.Client
	// Repo holds the mirror's hosted packages; nil unless it is hosted.
	Repo *hosted.Repo
	// MetaPrefix and DistPrefix are the storage prefixes of mirrored
	// metadata and files (the mirror's name is not included).
	MetaPrefix, DistPrefix string
	// PublicURL is the external base URL for the few absolute URLs an
	// ecosystem writes ("" : from the request).
	PublicURL string
	Log       *slog.Logger
	// Uploads reads what clients publish, with the server's limits
	// (UPLOAD_MAX_BYTES, BODY_READ_TIMEOUT).
	Uploads upload.Limits
	// TokenName names the access token a request carries, for logs (""
	// : none; never the token). Nil: no tokens.
	TokenName func(r *http.Request) string
	// AdvisoryBlocked counts a file an advisories policy refused, by
	// reason (mirror_advisory_blocks_total). Nil: not counted.
	AdvisoryBlocked func(reason string)
	// Audit records an event of the request (the server adds the client,
	// token and request id). Nil: no trail.
	Audit func(w http.ResponseWriter, r *http.Request, e audit.Event)
}

// MetaKey is the storage key of a mirrored metadata document.
func (e *Env) MetaKey(path string) string { return e.MetaPrefix + "/" + e.Mirror.Name + "/" + path }

var (
	mu    sync.RWMutex
	types = map[string]Type{}
)

// Register adds an ecosystem (from its package's init).
func Register(t Type) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := types[t.Name]; dup {
		panic("mirror: type registered twice: " + t.Name)
	}
	types[t.Name] = t
}

// Lookup returns the ecosystem of a type name.
func Lookup(name string) (Type, bool) {
	mu.RLock()
	defer mu.RUnlock()
	t, ok := types[name]
	return t, ok
}

// Types lists the registered type names, sorted.
func Types() []string {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]string, 0, len(types))
	for n := range types {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// MountsOf are the path prefixes of mirror name of type t.
func (t Type) MountsOf(name string) []string {
	if t.Mounts != nil {
		return t.Mounts(name)
	}
	return []string{"/" + name}
}
