// Package proxy is the HTTP server: routes per mirror, middleware, and the
// one fetch-through core (memory → disk cache → storage → upstream) that
// every ecosystem's handlers use.
package proxy

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/mirror-proxy/mirror-proxy/cache"
	"github.com/mirror-proxy/mirror-proxy/storage"
)

const userAgent = "mirror-proxy/1 (+https://github.com/mirror-proxy/mirror-proxy)"

// Core is the fetch-through machinery shared by every mirror.
type Core struct {
	store    storage.Store
	mem      *cache.Memory[*metaEntry]
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

	// bg is the parent of detached downloads; cancelled only when a
	// shutdown's grace period is over. wg counts running downloads.
	bg       context.Context
	cancelBg context.CancelFunc
	wg       sync.WaitGroup

	metrics counters
}

// counters are the core's operational counters (exported as metrics later).
type counters struct {
	upstreamRequests atomic.Int64
	upstreamFiles    atomic.Int64
	upstreamBytes    atomic.Int64
	storageErrors    atomic.Int64
	flightWaits      atomic.Int64
	hitsDisk         atomic.Int64
	hitsStorage      atomic.Int64
	misses           atomic.Int64
}

func (m *counters) hit(tier string) {
	if tier == "disk" {
		m.hitsDisk.Add(1)
	} else {
		m.hitsStorage.Add(1)
	}
}

func (m *counters) miss() { m.misses.Add(1) }

func newCore(o *Options) *Core {
	spool := os.TempDir()
	if o.DistCache != nil {
		// Same filesystem: a finished download is linked in, not copied.
		spool = filepath.Join(o.DistCacheDir, ".tmp")
	}
	bg, cancel := context.WithCancel(context.Background())
	c := &Core{
		store: o.Store, mem: cache.NewMemory[*metaEntry](o.MemoryCacheBytes),
		metaDisk: o.MetaCache, distDisk: o.DistCache, log: o.Logger, now: time.Now,
		flights: map[string]*flight{}, spoolDir: spool,
		upstreamTimeout: o.UpstreamTimeout, downloadTimeout: 2 * time.Hour,
		bg: bg, cancelBg: cancel,
	}
	return c
}
