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
}

// Config configures a Core.
type Config struct {
	Store            storage.Store
	MemoryCacheBytes int64
	MetaCache        *cache.Disk // optional
	DistCache        *cache.Disk // optional
	DistCacheDir     string
	UpstreamTimeout  time.Duration
	Logger           *slog.Logger
	Coordinator      *coord.Coordinator // optional
	LeaseWait        time.Duration
	MaxMetadataBytes int64
	VerifyFailureTTL time.Duration
	// UpstreamIdleTimeout, MaxFileBytes, FinishShare and MetadataFetches:
	// see proxy.Options.
	UpstreamIdleTimeout time.Duration
	MaxFileBytes        int64
	FinishShare         float64
	MetadataFetches     int
	// MetadataMemoryBytes bounds the decoded metadata held by every read
	// at once (METADATA_MEMORY_BYTES); at least twice MaxMetadataBytes.
	MetadataMemoryBytes int64
	// IsKnownMethod bounds the method label of request metrics.
	IsKnownMethod func(string) bool
}

// NewCore returns the core; Stop ends its background work.
func NewCore(cfg Config) *Core {
	o := &cfg
	spool := os.TempDir()
	if o.DistCache != nil {
		// Same filesystem: a finished download is linked in, not copied.
		spool = filepath.Join(o.DistCacheDir, ".tmp")
	}
	bg, cancel := context.WithCancel(context.Background())
	m := newMetrics(o.Coordinator != nil)
	m.isKnownMethod = o.IsKnownMethod
	c := &Core{
		store: metered.New(o.Store, func(op, result string) { m.storageOps.with(op, result).Inc() }), metrics: m, mem: cache.NewMemory[*MetaEntry](o.MemoryCacheBytes),
		coord: o.Coordinator, id: randid.New(), leaseTTL: 10 * time.Second, leaseWait: o.LeaseWait,
		metaDisk: o.MetaCache, distDisk: o.DistCache, log: o.Logger, now: time.Now,
		flights: map[string]*flight{}, spoolDir: spool,
		upstreamTimeout: o.UpstreamTimeout, downloadTimeout: 2 * time.Hour,
		maxMeta: o.MaxMetadataBytes, maxFile: o.MaxFileBytes, idleTimeout: o.UpstreamIdleTimeout, verifyFailureTTL: o.VerifyFailureTTL, finishShare: o.FinishShare, fetchSem: make(chan struct{}, o.MetadataFetches),
		bg: bg, cancelBg: cancel, budget: newBudget(o.MetadataMemoryBytes, o.MaxMetadataBytes),
	}
	if c.leaseWait <= 0 {
		c.leaseWait = 60 * time.Second
	}
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
func (c *Core) Stop() { c.cancelBg() }

// MaxMetadataBytes is MAX_METADATA_BYTES.
func (c *Core) MaxMetadataBytes() int64 { return c.maxMeta }

// UpstreamTimeout is UPSTREAM_TIMEOUT.
func (c *Core) UpstreamTimeout() time.Duration { return c.upstreamTimeout }

// PurgeMemory drops the memory cache (tests).
func (c *Core) PurgeMemory() { c.mem.Purge() }

// MemoryUsed is what the memory cache counts (tests).
func (c *Core) MemoryUsed() int64 { return c.mem.Used() }

// Peek returns the parsed form of a document in memory, if any (tests).
func (c *Core) Peek(key string) any {
	e, ok := c.mem.Get(key)
	if !ok {
		return nil
	}
	return e.parsed
}
