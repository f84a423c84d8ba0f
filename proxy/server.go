// Package proxy is the HTTP server: the echo wiring (request ids, logging,
// recovery, authentication, metrics, health) and the mounting of every
// configured mirror's routes; the work is done by package fetch and the
// ecosystems' handlers.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mirror-proxy/mirror-proxy/audit"
	"github.com/mirror-proxy/mirror-proxy/cache"
	"github.com/mirror-proxy/mirror-proxy/coord"
	"github.com/mirror-proxy/mirror-proxy/fetch"
	"github.com/mirror-proxy/mirror-proxy/hosted/upload"
	"github.com/mirror-proxy/mirror-proxy/httpx"
	"github.com/mirror-proxy/mirror-proxy/internal/randid"
	"github.com/mirror-proxy/mirror-proxy/mirror"
	"github.com/mirror-proxy/mirror-proxy/osv"
	"github.com/mirror-proxy/mirror-proxy/policy"
	"github.com/mirror-proxy/mirror-proxy/storage"
)

// Mirror is one configured upstream (see fetch.Mirror).
type Mirror = fetch.Mirror

// HostAuth is a credential for one upstream host (see fetch.HostAuth).
type HostAuth = fetch.HostAuth

// KnownType reports whether t is a registered mirror type.
func KnownType(t string) bool { _, ok := mirror.Lookup(t); return ok }

// Types lists the registered mirror types.
func Types() []string { return mirror.Types() }

// Options configure a Server: its own settings, and the core's (the
// fields fetch.Config documents, with fetch.Defaults). Zero values take
// the defaults; fetch.Off switches VerifyFailureTTL or FinishShare off.
type Options struct {
	Store      storage.Store
	MetaPrefix string
	DistPrefix string
	Mirrors    []Mirror
	Logger     *slog.Logger
	// Ready reports whether storage is reachable (GET /readyz).
	Ready func(ctx context.Context) error
	// Coordinator, when set, coordinates replicas through Redis.
	Coordinator *coord.Coordinator
	// TrustedProxies are the peers (load balancers) whose X-Forwarded-For
	// and X-Forwarded-Proto are believed, for the client's address, its
	// scheme and the URLs the proxy writes; empty: loopback only.
	TrustedProxies []netip.Prefix
	// PublicURL, when set, is the base of the absolute URLs the proxy
	// writes (scheme://host[:port]); otherwise each request's own.
	PublicURL string

	// The core's settings: see fetch.Config.
	MemoryCacheBytes    int64
	MetaCache           *cache.Disk // optional
	DistCache           *cache.Disk // optional
	DistCacheDir        string
	UpstreamTimeout     time.Duration
	UpstreamIdleTimeout time.Duration
	LeaseWait           time.Duration
	MaxMetadataBytes    int64
	MaxFileBytes        int64
	VerifyFailureTTL    time.Duration
	FinishShare         float64
	MetadataFetches     int
	MetadataMemoryBytes int64
	AccessFlush         time.Duration

	// Tokens, when any, are required by every request to a mirror (see
	// authorize); none: reads are open and writes refused.
	Tokens []Token
	// BodyReadTimeout bounds the time a request body may take to arrive
	// (default 30 s); for uploads, the time it may send nothing.
	BodyReadTimeout time.Duration
	// ArtifactPrefix is the key prefix of hosted packages (default
	// "artifact").
	ArtifactPrefix string
	// UploadMaxBytes caps one uploaded file (default 512 MiB).
	UploadMaxBytes int64
	// StdHTTP serves every request with net/http alone, without the
	// HTTP/1.1 loop of package h1 for GET and HEAD.
	StdHTTP bool
	// OSVRefresh is how often the OSV data of mirrors with an advisories
	// policy is checked for a new version in storage (default 1 hour).
	OSVRefresh time.Duration
	// OSVURL, when set, is where that data is fetched from when the copy
	// in storage is older than OSVRefresh (<OSVURL>/<Ecosystem>/all.zip),
	// by one replica at a time with Redis; "" : only what is imported.
	OSVURL string
	// Audit, when set, records the audit trail (see package audit).
	Audit *audit.Trail
}

// Defaults are the server's own settings that Options' zero values mean
// (the core's are fetch.Defaults).
var Defaults = Options{
	OSVRefresh:      time.Hour,
	BodyReadTimeout: 30 * time.Second,
	ArtifactPrefix:  "artifact",
	UploadMaxBytes:  upload.DefaultMax,
}

// withDefaults is o with the server's zero settings at their defaults;
// the core's are left to the core.
func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.BodyReadTimeout <= 0 {
		o.BodyReadTimeout = Defaults.BodyReadTimeout
	}
	if o.ArtifactPrefix == "" {
		o.ArtifactPrefix = Defaults.ArtifactPrefix
	}
	if o.UploadMaxBytes <= 0 {
		o.UploadMaxBytes = Defaults.UploadMaxBytes
	}
	if o.OSVRefresh <= 0 {
		o.OSVRefresh = Defaults.OSVRefresh
	}
	return o
}

// coreConfig is the part of o that configures the fetch-through core.
func (o Options) coreConfig() fetch.Config {
	return fetch.Config{
		Store: o.Store, MemoryCacheBytes: o.MemoryCacheBytes, MetaCache: o.MetaCache, DistCache: o.DistCache,
		DistCacheDir: o.DistCacheDir, UpstreamTimeout: o.UpstreamTimeout, Logger: o.Logger, Coordinator: o.Coordinator,
		LeaseWait: o.LeaseWait, MaxMetadataBytes: o.MaxMetadataBytes, VerifyFailureTTL: o.VerifyFailureTTL,
		UpstreamIdleTimeout: o.UpstreamIdleTimeout, MaxFileBytes: o.MaxFileBytes, FinishShare: o.FinishShare,
		MetadataFetches: o.MetadataFetches, MetadataMemoryBytes: o.MetadataMemoryBytes,
		IsKnownMethod: func(m string) bool { return knownMethods[m] },
		// Files served are recorded for retention (mirror-proxy gc).
		AccessPrefix: storage.Join(o.MetaPrefix, "access"), AccessOf: o.DistPrefix + "/", AccessFlush: o.AccessFlush,
	}
}

// Server is the proxy's HTTP server.
type Server struct {
	e    *echo.Echo
	core *fetch.Core
	opts Options

	lastHealthz, lastReadyz atomic.Int32 // the last answers' statuses (quietProbe)

	storageHealth atomic.Pointer[string] // "ok" or what failed, from the background check
	redisHealth   atomic.Pointer[string]

	mirrors map[string]Mirror // by name

	feed *osv.Feed // the OSV data of advisories policies; nil: none

	upstreams       map[string]*upstreamState // by mirror: the status page's upstream health
	upstreamResults func(values ...string)    // mirror_upstream_results_total{mirror,outcome}
	publishes       func(values ...string)    // mirror_publishes_total{mirror,action,outcome}
	refusals        func(values ...string)    // mirror_refusals_total{mirror,reason}

	replays replays // warm responses kept for replay (replay.go)
	// replayIgnored: headers a replayed request may carry (replay.go).
	replayIgnored map[string]bool
}

// New builds the server and its routes.
func New(o Options) *Server {
	o = o.withDefaults()
	s := &Server{e: echo.New(), opts: o}
	cc := o.coreConfig()
	cc.MirrorOf = s.mirrorOfKey
	s.core = fetch.NewCore(cc)
	e := s.e
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	// The client's address is taken from X-Forwarded-For only when the
	// request comes from a trusted proxy (TRUSTED_PROXIES, loopback by
	// default); from anywhere else the header is ignored.
	httpx.TrustProxies(o.TrustedProxies)
	trust := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, p := range httpx.TrustedProxies() {
		trust = append(trust, echo.TrustIPRange(prefixNet(p)))
	}
	e.IPExtractor = echo.ExtractIPFromXFFHeader(trust...)
	e.Use(s.frame)
	e.GET("/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok\n") })
	e.GET("/readyz", s.readyz)
	go s.watchHealth(s.core.Background())
	if o.Audit != nil {
		go o.Audit.Run(s.core.Background())
	}
	e.GET("/metrics", echo.WrapHandler(s.core.Metrics().Handler()))
	for _, p := range []string{"/", "/-/status"} {
		e.GET(p, s.statusPage)
		e.HEAD(p, s.statusPage)
	}
	e.GET("/-/status.css", s.statusAsset("status.css", "text/css; charset=utf-8"))
	e.GET("/-/status.js", s.statusAsset("status.js", "text/javascript; charset=utf-8"))
	s.mirrors = map[string]Mirror{}
	s.upstreams = map[string]*upstreamState{}
	s.publishes = s.core.Metrics().Counter("mirror_publishes_total",
		"Publish, delete, yank and unyank requests by mirror, action and outcome (ok, denied, failed).", "mirror", "action", "outcome")
	s.refusals = s.core.Metrics().Counter("mirror_refusals_total",
		"Requests refused by mirror and reason: a policy (cooldown, deny, advisory, snapshot) or auth (a failed authentication or a missing scope).", "mirror", "reason")
	s.upstreamResults = s.core.Metrics().Counter("mirror_upstream_results_total",
		"Upstream requests by mirror and outcome: the status class (2xx, 3xx, 4xx, 5xx), or dns, connect, timeout, error.", "mirror", "outcome")
	var types []mirror.Type
	var advisoryBlocks func(values ...string)
	for _, m := range o.Mirrors {
		m = fetch.SplitUserinfo(m)
		s.mirrors[m.Name] = m
		t, ok := mirror.Lookup(m.Type)
		if !ok {
			o.Logger.Warn("mirror type not served; mirror skipped", "mirror", m.Name, "type", m.Type)
			continue
		}
		types = append(types, t)
		if m.Advisories != nil && advisoryBlocks == nil {
			advisoryBlocks = s.core.Metrics().Counter("mirror_advisory_blocks_total",
				"Files an advisories policy refused, by mirror and reason (malware, or the worst severity of the advisories).", "mirror", "reason")
		}
		if m.Advisories != nil {
			m = s.advise(m, t)
			s.mirrors[m.Name] = m
		}
		env := &mirror.Env{Core: s.core, Mirror: m, MetaPrefix: o.MetaPrefix, DistPrefix: o.DistPrefix,
			PublicURL: o.PublicURL, Log: o.Logger,
			Uploads: upload.Limits{Max: o.UploadMaxBytes, Idle: o.BodyReadTimeout, Dir: s.core.SpoolDir()},
			Client: fetch.NewClient(s.core.Config().UpstreamTimeout, m, fetch.ClientOptions{DefaultFileHosts: t.DefaultFileHosts,
				Took: s.core.Metrics().UpstreamObserver(m.Name), Adjust: t.AdjustResponse, Result: s.upstreamResult(m.Name)})}
		if m.Hosted {
			env.Repo = s.newRepo(m)
		}
		if len(o.Tokens) > 0 {
			env.TokenName = s.tokenName
		}
		env.Audit = s.auditEvent // the trail, when there is one, and the publish and refusal counters
		if m.Rules.Advisor != nil {
			name := m.Name
			env.AdvisoryBlocked = func(reason string) { advisoryBlocks(name, reason) }
		}
		eco := t.New(env)
		for _, prefix := range t.MountsOf(m.Name) {
			eco.Routes(s.router(prefix))
		}
	}
	if s.feed != nil {
		for _, eco := range s.feed.Ecosystems() {
			labels := map[string]string{"ecosystem": eco}
			m := s.core.Metrics()
			m.GaugeFunc("mirror_osv_records", "Advisory records of the ecosystem's OSV data loaded (advisories policies).", labels,
				func() float64 { return float64(s.feed.Records(eco)) })
			m.GaugeFunc("mirror_osv_age_seconds", "Age of the ecosystem's OSV data loaded, since it was stored (-1: none).", labels,
				func() float64 { return s.feed.Age(eco).Seconds() })
		}
		go s.feed.Run(s.core.Background())
	}
	s.replayIgnored = replayIgnoredBy(types)
	s.replays.maxBytes = replayBudget(s.core.Config().MemoryCacheBytes)
	return s
}

// advise gives mirror m (of type t) its advisories policy over the OSV
// data in storage (<meta prefix>/osv), which one Feed loads for every
// mirror that has one.
func (s *Server) advise(m Mirror, t mirror.Type) Mirror {
	if t.OSVEcosystem == "" || t.OSVCompare == nil {
		s.opts.Logger.Warn("advisories are not supported on this mirror type yet; policy ignored", "mirror", m.Name, "type", m.Type)
		return m
	}
	if s.feed == nil {
		s.feed = osv.NewFeed(s.opts.Store, storage.Join(s.opts.MetaPrefix, "osv"), nil, s.opts.OSVRefresh, s.opts.Logger)
		if s.opts.OSVURL != "" {
			var lease osv.Leaser
			if s.opts.Coordinator != nil {
				lease = osvLease{s.opts.Coordinator}
			}
			client := &http.Client{Timeout: 15 * time.Minute, Transport: &http.Transport{Proxy: http.ProxyFromEnvironment}}
			s.feed.FetchFrom(s.opts.OSVURL, client, lease)
		}
	}
	s.feed.Follow(t.OSVEcosystem, t.OSVNormalize)
	a := m.Advisories
	m.Rules.Advisor = osv.NewPolicy(s.feed, t.OSVEcosystem, t.OSVCompare, a.Block, a.Ignore, a.Report)
	return m
}

// roundAge is d to the second, or to the minute from an hour.
func roundAge(d time.Duration) time.Duration {
	if d >= time.Hour {
		return d.Round(time.Minute)
	}
	return d.Round(time.Second)
}

// osvLease is the Redis lease under which one replica fetches OSV data.
type osvLease struct{ c *coord.Coordinator }

func (l osvLease) TryLease(ctx context.Context, name string, ttl time.Duration) (func(), bool, error) {
	ls, ok, err := l.c.TryLease(ctx, name, ttl)
	if ls == nil {
		return nil, ok, err
	}
	return ls.Release, ok, err
}

// mirrorOfKey is the configured mirror a storage key belongs to
// (<meta, dist or artifact prefix>/<mirror>/...), or "other": the mirror
// label of the core's metrics. It allocates nothing.
func (s *Server) mirrorOfKey(key string) string {
	for _, p := range [...]string{s.opts.MetaPrefix, s.opts.DistPrefix, s.opts.ArtifactPrefix} {
		if len(key) > len(p) && key[len(p)] == '/' && key[:len(p)] == p {
			name, _, _ := strings.Cut(key[len(p)+1:], "/")
			if m, ok := s.mirrors[name]; ok {
				return m.Name
			}
			return "other"
		}
	}
	return "other"
}

// knownMethods are the methods any route may answer; anything else is a
// 405 before routing, and one "other" label in the metrics. OPTIONS is
// not among them: no package client sends it, and echo would answer it
// with a route's methods, token or not.
var knownMethods = map[string]bool{http.MethodGet: true, http.MethodHead: true, http.MethodPost: true,
	http.MethodPut: true, http.MethodDelete: true, http.MethodPatch: true}

// prefixNet is p as a net.IPNet (echo's trust options take those).
func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// validHost reports whether a Host header is one the proxy accepts: a
// DNS name or an IP literal of at most 253 characters, with an optional
// port. Checked by hand: it runs on every request.
func validHost(h string) bool {
	name, port := h, ""
	if strings.HasPrefix(h, "[") { // [IPv6]:port
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return false
		}
		for i := 1; i < end; i++ {
			if c := h[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == ':' || c == '.') {
				return false
			}
		}
		name, port = "", h[end+1:]
		if port != "" && port[0] != ':' {
			return false
		}
	} else if i := strings.LastIndexByte(h, ':'); i >= 0 {
		name, port = h[:i], h[i:]
	}
	if len(port) > 6 || port == ":" {
		return false
	}
	for i := 1; i < len(port); i++ {
		if port[i] < '0' || port[i] > '9' {
			return false
		}
	}
	if len(name) > 253 || (name == "" && !strings.HasPrefix(h, "[")) {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// validRequestID reports whether a client's X-Request-Id is adopted: 1 to
// 128 characters of [A-Za-z0-9._:+/=-]; any other (or none) is replaced.
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._:+/=-", c) >= 0) {
			return false
		}
	}
	return true
}

// frame is the one middleware every request runs through (echo v4 builds
// the middleware chain anew for every request, so there is one link, not
// four). It gives the request its id, refuses what no route can take (an
// unknown method, a malformed or huge Host), bounds how long a body may
// take to arrive, turns a panic into a 500 (an aborted response is cut
// off), counts the request in the metrics and logs it. Authorization is
// decided per route (adapt).
func (s *Server) frame(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		s.core.Metrics().InFlight(1)
		defer s.core.Metrics().InFlight(-1)
		r := c.Request()
		id := httpx.HeaderValue(r, "X-Request-Id")
		if !validRequestID(id) {
			id = randid.New()
		}
		c.Response().Header()[echo.HeaderXRequestID] = []string{id}
		var err error
		switch {
		case !knownMethods[r.Method]:
			err = echo.NewHTTPError(http.StatusMethodNotAllowed, "method not allowed")
		case r.Host != "" && !validHost(r.Host):
			err = echo.NewHTTPError(http.StatusBadRequest, "malformed Host header")
		default:
			if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
				// A body that trickles in must not hold a connection for
				// long: the whole body has BodyReadTimeout to arrive. Once
				// it has, the deadline is lifted: net/http cancels a
				// request whose connection times out while its handler
				// still works.
				rc := http.NewResponseController(c.Response().Writer)
				if rc.SetReadDeadline(time.Now().Add(s.opts.BodyReadTimeout)) == nil {
					r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
				}
			}
			err = s.run(next, c, start)
		}
		if err != nil {
			c.Error(err)
		}
		s.observe(c, time.Since(start))
		if _, stale := c.Response().Header()["X-Mirror-Stale"]; stale {
			s.core.Metrics().Stale()
		}
		res := c.Response()
		if s.quietProbe(r.URL.Path, res.Status) {
			return nil
		}
		s.logRequest(c.Request(), id, res.Status, res.Size, start, c.RealIP)
		return nil
	}
}

// quietProbe reports whether a request to /healthz or /readyz goes
// unlogged: probes come every few seconds from every checker and would be
// most of a replica's log, so only a change of their answer is logged.
func (s *Server) quietProbe(path string, status int) bool {
	var last *atomic.Int32
	switch path {
	case "/healthz":
		last = &s.lastHealthz
	case "/readyz":
		last = &s.lastReadyz
		// Its answer is also the storage's health, under a 200.
		if p := s.storageHealth.Load(); p != nil && *p != "ok" {
			status += 1000
		}
	default:
		return false
	}
	return int(last.Swap(int32(status))) == status
}

// logRequest writes the one line every request gets (replays included):
// remote is asked only when the line is written.
func (s *Server) logRequest(r *http.Request, id string, status int, size int64, start time.Time, remote func() string) {
	if !s.opts.Logger.Enabled(r.Context(), slog.LevelInfo) {
		return
	}
	s.opts.Logger.Info("request",
		"request_id", id, "method", r.Method, "path", r.URL.Path, "status", status,
		"bytes", size, "duration_ms", time.Since(start).Milliseconds(),
		"remote", remote(), "user_agent", r.UserAgent())
}

// run runs the handler. A panic with http.ErrAbortHandler (an aborted
// response) is counted and logged here, then goes on so the server cuts
// the connection; any other panic is logged with its stack and becomes a
// 500 (echo's Recover did the same).
func (s *Server) run(next echo.HandlerFunc, c echo.Context, start time.Time) (err error) {
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		if p != http.ErrAbortHandler {
			s.opts.Logger.Error("panic serving a request", "path", c.Request().URL.Path, "panic", fmt.Sprint(p),
				"stack", string(debug.Stack()))
			if !c.Response().Committed {
				err = echo.NewHTTPError(http.StatusInternalServerError, "internal error (logged)")
				return
			}
		}
		info, _ := c.Get(abortKey).(*httpx.Aborted)
		if info == nil {
			info = &httpx.Aborted{Reason: "aborted"}
		}
		s.core.Metrics().Aborted(info.Reason)
		s.observe(c, time.Since(start))
		req, res := c.Request(), c.Response()
		s.opts.Logger.Warn("response aborted",
			"request_id", res.Header().Get(echo.HeaderXRequestID),
			"method", req.Method, "path", req.URL.Path, "status", res.Status,
			"bytes", res.Size, "duration_ms", time.Since(start).Milliseconds(),
			"reason", info.Reason, "err", fmt.Sprint(info.Err), "remote", c.RealIP())
		panic(http.ErrAbortHandler)
	}()
	return next(c)
}

// snapshotRequest takes a dated snapshot's segment out of a mirror's path
// (/<mirror>/@2025-06-01/... or /mirror/<mirror>/@2025-06-01/...) so that
// the mirror's own routes serve it, and marks the request with the
// snapshot's cutoff (see policy.Snapshot).
func (s *Server) snapshotRequest(r *http.Request) (*http.Request, bool) {
	p := r.URL.Path
	start := 1
	if strings.HasPrefix(p, "/mirror/") {
		start = len("/mirror/")
	}
	nameEnd := strings.IndexByte(p[start:], '/')
	if nameEnd < 0 {
		return nil, false
	}
	nameEnd += start
	if _, ok := s.mirrors[p[start:nameEnd]]; !ok {
		return nil, false
	}
	seg, rest, _ := strings.Cut(p[nameEnd+1:], "/")
	cutoff, ok := policy.ParseSnapshot(seg)
	if !ok {
		return nil, false // not a date: a package scope, say
	}
	u := *r.URL
	u.Path = p[:nameEnd] + "/" + rest
	if u.RawPath != "" {
		u.RawPath = strings.Replace(u.RawPath, "/"+seg+"/", "/", 1)
	}
	sr := policy.WithSnapshot(r, seg, cutoff)
	sr.URL = &u
	return sr, true
}

// deadlineBody lifts the connection's read deadline once the body has
// been read to its end.
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
	// idle, once set (uploads), turns the deadline into an idle limit:
	// each read gives the body this long again.
	idle atomic.Int64
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	if d := b.idle.Load(); d > 0 && !b.done {
		_ = b.rc.SetReadDeadline(time.Now().Add(time.Duration(d)))
	}
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.done {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// observe counts a request in the metrics (by route template).
func (s *Server) observe(c echo.Context, took time.Duration) {
	s.core.Metrics().Observe(c.Path(), c.Request().Method, c.Response().Status, c.Response().Size, took)
}

// SetIdle turns the body's deadline into an idle limit: each read gives
// the body d again (uploads, which may take long while they keep sending).
func (b *deadlineBody) SetIdle(d time.Duration) { b.idle.Store(int64(d)) }

// Core is the server's fetch-through core (tests and embedding).
func (s *Server) Core() *fetch.Core { return s.core }

// Handler is the server as an http.Handler.
func (s *Server) Handler() http.Handler { return s }

// healthInterval is how often storage and Redis are checked in the
// background; /readyz answers from the last result at once, so a probe
// with a short timeout never waits on a hanging store.
const healthInterval = 2 * time.Second

// watchHealth checks storage and Redis every healthInterval until ctx ends.
func (s *Server) watchHealth(ctx context.Context) {
	for {
		s.checkHealth(ctx)
		select {
		case <-ctx.Done():
			return
		case <-time.After(healthInterval):
		}
	}
}

func (s *Server) checkHealth(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, healthInterval)
	defer cancel()
	st := "ok"
	if s.opts.Ready != nil {
		if err := s.opts.Ready(cctx); err != nil {
			st = err.Error()
		}
	}
	s.storageHealth.Store(&st)
	s.core.Metrics().StorageUp(st == "ok")
	if s.opts.Coordinator != nil {
		// Also keeps mirror_redis_up true to Redis on an idle replica.
		rs := "ok"
		if err := s.opts.Coordinator.Ping(cctx); err != nil {
			rs = "unreachable (coordination is local only): " + err.Error()
		}
		s.redisHealth.Store(&rs)
	}
}

// readyz answers 200 while the process can serve. Unreachable storage is
// reported as degraded, not as unready: the caches and the upstream still
// serve clients, and failing every replica's readiness at once would take
// the whole fleet out of its load balancer. ?strict=1 turns degraded
// storage into a 503. It answers at once from the last background check.
func (s *Server) readyz(c echo.Context) error {
	h := s.health()
	status := map[string]string{"status": h.Status, "storage": h.Storage}
	if h.Redis != "" {
		status["redis"] = h.Redis
	}
	for k, v := range h.Other {
		status[k] = v
	}
	code := http.StatusOK
	if status["status"] != "ready" && c.QueryParam("strict") != "" {
		code = http.StatusServiceUnavailable
	}
	return c.JSON(code, status)
}

// handleError is the one place where errors become responses.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var rd *httpx.RedirectTo
	if errors.As(err, &rd) {
		_ = c.Redirect(http.StatusMovedPermanently, rd.URL)
		return
	}
	code, msg := errorStatus(err)
	if ra := httpx.RetryAfterOf(err); ra != "" {
		c.Response().Header().Set("Retry-After", ra)
	}
	msg = httpx.Truncate(msg, 1000)
	if code >= 500 {
		s.opts.Logger.Warn("request failed", "path", c.Request().URL.Path, "status", code, "err", msg,
			"request_id", c.Response().Header().Get(echo.HeaderXRequestID))
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(code)
		return
	}
	_ = c.JSON(code, map[string]string{"error": msg})
}

// Close cancels background work (tests).
func (s *Server) Close() {
	s.core.Stop()
	s.core.Wait()
}
