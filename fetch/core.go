// Package fetch is the one fetch-through core that every ecosystem uses:
// metadata documents (memory → disk cache → storage → upstream, revalidated,
// stale on failure, single-flight across requests and, with Redis, across
// replicas), immutable files (streamed while they are stored, verified
// before they are committed), hosted artifacts, and the HTTP helpers that
// serve them (conditional responses, compression, errors). It speaks
// net/http and knows no ecosystem's protocol.
package fetch

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/mirror-proxy/mirror-proxy/cache"
	"github.com/mirror-proxy/mirror-proxy/coord"
	"github.com/mirror-proxy/mirror-proxy/hosted"
	"github.com/mirror-proxy/mirror-proxy/internal/randid"
	"github.com/mirror-proxy/mirror-proxy/storage"
	"github.com/mirror-proxy/mirror-proxy/storage/metered"
)

const userAgent = "mirror-proxy/1 (+https://github.com/mirror-proxy/mirror-proxy)"

// Core is the fetch-through machinery shared by every mirror.
type Core struct {
	store    storage.Store
	mem      *cache.Memory[*MetaEntry]
	metaDisk *cache.Disk // nil when not configured
	distDisk *cache.Disk // nil when not configured
	log      *slog.Logger
	now      func() time.Time

	sf        singleflight.Group
	flightsMu sync.Mutex
	flights   map[string]*flight
	spoolDir  string

	upstreamTimeout time.Duration
	downloadTimeout time.Duration
	maxMeta         int64         // MAX_METADATA_BYTES
	budget          *budget       // METADATA_MEMORY_BYTES
	maxFile         int64         // MAX_FILE_BYTES
	idleTimeout     time.Duration // UPSTREAM_IDLE_TIMEOUT
	// badFiles: key → badFile, recent verification failures.
	badFiles         sync.Map
	verifyFailureTTL time.Duration
	finishShare      float64       // DOWNLOAD_FINISH_SHARE
	fetchSem         chan struct{} // bounds metadata fetches at once

	// bg is the parent of detached downloads; cancelled only when a
	// shutdown's grace period is over. wg counts running downloads.
	bg       context.Context
	cancelBg context.CancelFunc
	wg       sync.WaitGroup

	metrics *Metrics

	// coord shares leases, freshness and invalidations between replicas
	// (nil without REDIS_URL). id tells this process's messages apart.
	coord     *coord.Coordinator
	id        string
	reposMu   sync.Mutex
	repos     []*hosted.Repo // hosted repositories, told of invalidations
	leaseTTL  time.Duration
	leaseWait time.Duration

	cfg Config // as configured, defaults applied

	access     accessLog
	accessDone chan struct{} // closed when the access log's last flush is done
}

// Config is the core's configuration, defaults applied.
func (c *Core) Config() Config { return c.cfg }

// Off is the value of a Config setting that is switched off
// (VerifyFailureTTL, FinishShare), where the zero value means the default.
const Off = -1

// Config configures a Core. Zero values take the defaults (withDefaults,
// the one place they are set; the environment's defaults in
// cmd/mirror-proxy are checked against them by a test).
type Config struct {
	Store     storage.Store
	MetaCache *cache.Disk // optional
	DistCache *cache.Disk // optional
	// DistCacheDir is DistCache's directory: downloads are spooled there
	// and linked in.
	DistCacheDir string
	Logger       *slog.Logger
	Coordinator  *coord.Coordinator // optional
	// MemoryCacheBytes bounds the memory cache of metadata (default 256
	// MiB; negative: none).
	MemoryCacheBytes int64
	// UpstreamTimeout bounds an upstream's answer (default 30 s).
	UpstreamTimeout time.Duration
	// UpstreamIdleTimeout gives up a file download whose body delivers
	// nothing for this long (default: UpstreamTimeout).
	UpstreamIdleTimeout time.Duration
	// LeaseWait bounds how long a request waits for another replica's
	// download before answering 503 (default 60 s).
	LeaseWait time.Duration
	// MaxMetadataBytes caps one upstream metadata document, decompressed
	// (default 64 MiB).
	MaxMetadataBytes int64
	// MaxFileBytes caps one downloaded file when the metadata gives no
	// size (default 2 GiB).
	MaxFileBytes int64
	// VerifyFailureTTL is how long a file that failed verification is
	// answered with the same 502 without being fetched again, by every
	// replica when Redis is there (default 30 s; Off: not at all).
	VerifyFailureTTL time.Duration
	// FinishShare: a download every client has left goes on only if it is
	// past this share of its size (default 0.5; Off finishes every
	// download of a known size, above 1 stops them all).
	FinishShare float64
	// MetadataFetches bounds the upstream metadata fetches running at
	// once in this process (default 16).
	MetadataFetches int
	// MetadataMemoryBytes bounds the decoded metadata held by every read
	// at once (default 256 MiB; at least twice MaxMetadataBytes): more
	// wait, and past 10 s answer 503.
	MetadataMemoryBytes int64
	// IsKnownMethod bounds the method label of request metrics.
	IsKnownMethod func(string) bool
	// MirrorOf names the configured mirror a storage key belongs to, or
	// "other": the mirror label of cache and upstream metrics, bounded by
	// the configuration. Nil: every key is "other".
	MirrorOf func(key string) string
	// AccessPrefix is where access records are written (package access;
	// "" : files served are not recorded); AccessOf the key prefix of
	// the files recorded (the mirrored files'); AccessFlush how often a
	// replica writes what it noted (default 1 minute).
	AccessPrefix, AccessOf string
	AccessFlush            time.Duration
}

// Defaults are the settings a Config's zero values mean (a zero
// UpstreamIdleTimeout means UpstreamTimeout).
var Defaults = Config{
	MemoryCacheBytes:    256 << 20,
	UpstreamTimeout:     30 * time.Second,
	LeaseWait:           60 * time.Second,
	MaxMetadataBytes:    64 << 20, // the largest p2 files and PyPI pages are a few MB
	MaxFileBytes:        2 << 30,
	VerifyFailureTTL:    30 * time.Second,
	FinishShare:         0.5,
	MetadataFetches:     16,
	MetadataMemoryBytes: 256 << 20,
	AccessFlush:         time.Minute,
}

// withDefaults is o with every zero setting at its default.
func (o Config) withDefaults() Config {
	setDefault(&o.MemoryCacheBytes, Defaults.MemoryCacheBytes)
	setDefault(&o.UpstreamTimeout, Defaults.UpstreamTimeout)
	setDefault(&o.UpstreamIdleTimeout, o.UpstreamTimeout)
	setDefault(&o.LeaseWait, Defaults.LeaseWait)
	setDefault(&o.MaxMetadataBytes, Defaults.MaxMetadataBytes)
	setDefault(&o.MaxFileBytes, Defaults.MaxFileBytes)
	setDefault(&o.VerifyFailureTTL, Defaults.VerifyFailureTTL)
	setDefault(&o.FinishShare, Defaults.FinishShare)
	setDefault(&o.MetadataFetches, Defaults.MetadataFetches)
	setDefault(&o.MetadataMemoryBytes, Defaults.MetadataMemoryBytes)
	setDefault(&o.AccessFlush, Defaults.AccessFlush)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.IsKnownMethod == nil {
		o.IsKnownMethod = func(string) bool { return true }
	}
	return o
}

// setDefault sets *v to def when it is zero.
func setDefault[T int | int64 | float64 | time.Duration](v *T, def T) {
	if *v == 0 {
		*v = def
	}
}

// NewCore returns the core; Stop ends its background work.
func NewCore(cfg Config) *Core {
	cfg = cfg.withDefaults()
	o := &cfg
	spool := os.TempDir()
	if o.DistCache != nil {
		// Same filesystem: a finished download is linked in, not copied.
		spool = filepath.Join(o.DistCacheDir, ".tmp")
	}
	bg, cancel := context.WithCancel(context.Background())
	m := newMetrics(o.Coordinator != nil)
	m.isKnownMethod = o.IsKnownMethod
	m.mirrorOf = o.MirrorOf
	c := &Core{
		store: metered.New(o.Store, func(op, result string, took time.Duration) {
			m.storageOps.with(op, result).Inc()
			m.storageTime.WithLabelValues(op).Observe(took.Seconds())
		}), metrics: m, mem: cache.NewMemory[*MetaEntry](o.MemoryCacheBytes),
		coord: o.Coordinator, id: randid.New(), leaseTTL: 10 * time.Second, leaseWait: o.LeaseWait,
		metaDisk: o.MetaCache, distDisk: o.DistCache, log: o.Logger, now: time.Now,
		flights: map[string]*flight{}, spoolDir: spool,
		upstreamTimeout: o.UpstreamTimeout, downloadTimeout: 2 * time.Hour,
		maxMeta: o.MaxMetadataBytes, maxFile: o.MaxFileBytes, idleTimeout: o.UpstreamIdleTimeout, verifyFailureTTL: o.VerifyFailureTTL, finishShare: o.FinishShare, fetchSem: make(chan struct{}, o.MetadataFetches),
		bg: bg, cancelBg: cancel, budget: newBudget(o.MetadataMemoryBytes, o.MaxMetadataBytes), cfg: cfg,
	}
	m.gaugeFunc("mirror_memory_cache_bytes", "Bytes the memory cache of metadata holds, as its budget (MEMORY_CACHE_BYTES) counts them.",
		func() float64 { return float64(c.mem.Used()) })
	if c.coord != nil {
		c.coord.OnError = func(err error) {
			m.redisErrors.Inc()
			m.setRedisUp(false)
		}
		c.coord.OnOK = func() { m.setRedisUp(true) }
		go c.coord.Subscribe(bg, c.invalidated, func() {
			// Invalidations sent while we were disconnected are lost.
			c.mem.Purge()
			c.eachRepo(func(r *hosted.Repo) { r.Forget() })
			c.log.Info("redis subscription (re)established; memory cache cleared")
		})
	}
	c.accessDone = make(chan struct{})
	if cfg.AccessPrefix != "" {
		go func() { defer close(c.accessDone); c.flushAccessLoop() }()
	} else {
		close(c.accessDone)
	}
	return c
}

// invalidated handles another replica's "key changed" message.
func (c *Core) invalidated(msg string) {
	id, key, ok := strings.Cut(msg, " ")
	if !ok || id == c.id {
		return
	}
	c.mem.Remove(key)
	c.eachRepo(func(r *hosted.Repo) { r.Invalidated(key) })
	if c.metaDisk != nil {
		c.metaDisk.Remove(key)
	}
	if c.distDisk != nil {
		c.distDisk.Remove(key) // a file dropped by another replica
	}
}

// Metrics are the core's collectors (and the server's, in one registry).
func (c *Core) Metrics() *Metrics { return c.metrics }

// Background is the context of work that outlives requests (downloads,
// health checks); it ends with Stop.
func (c *Core) Background() context.Context { return c.bg }

// Wait waits for running downloads to end.
func (c *Core) Wait() { c.wg.Wait() }

// Stop cancels the background work (downloads still running commit nothing).
// The access log is flushed one last time before it returns.
func (c *Core) Stop() {
	c.cancelBg()
	<-c.accessDone
}

// MaxMetadataBytes is MAX_METADATA_BYTES.
func (c *Core) MaxMetadataBytes() int64 { return c.maxMeta }

// UpstreamTimeout is UPSTREAM_TIMEOUT.
func (c *Core) UpstreamTimeout() time.Duration { return c.upstreamTimeout }
