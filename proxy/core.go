// Package proxy is the HTTP server: routes per mirror, middleware, and the
// one fetch-through core (memory → disk cache → storage → upstream) that
// every ecosystem's handlers use.
package proxy

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
	"github.com/mirror-proxy/mirror-proxy/hosted"
	"github.com/mirror-proxy/mirror-proxy/storage"
)

const UserAgent = "mirror-proxy/1 (+https://github.com/mirror-proxy/mirror-proxy)"

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

	metrics *metrics

	// coord shares leases, freshness and invalidations between replicas
	// (nil without REDIS_URL). id tells this process's messages apart.
	coord     *cache.Coordinator
	id        string
	reposMu   sync.Mutex
	repos     []*hosted.Repo // hosted repositories, told of invalidations
	leaseTTL  time.Duration
	leaseWait time.Duration
}

func newCore(o *Options) *Core {
	spool := os.TempDir()
	if o.DistCache != nil {
		// Same filesystem: a finished download is linked in, not copied.
		spool = filepath.Join(o.DistCacheDir, ".tmp")
	}
	bg, cancel := context.WithCancel(context.Background())
	m := newMetrics(o.Coordinator != nil)
	c := &Core{
		store: countedStore{o.Store, m}, metrics: m, mem: cache.NewMemory[*MetaEntry](o.MemoryCacheBytes),
		coord: o.Coordinator, id: randomID(), leaseTTL: 10 * time.Second, leaseWait: o.LeaseWait,
		metaDisk: o.MetaCache, distDisk: o.DistCache, log: o.Logger, now: time.Now,
		flights: map[string]*flight{}, spoolDir: spool,
		upstreamTimeout: o.UpstreamTimeout, downloadTimeout: 2 * time.Hour,
		maxMeta: o.MaxMetadataBytes, maxFile: o.MaxFileBytes, idleTimeout: o.UpstreamIdleTimeout, verifyFailureTTL: o.VerifyFailureTTL, finishShare: o.FinishShare, fetchSem: make(chan struct{}, o.MetadataFetches),
		bg: bg, cancelBg: cancel,
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
