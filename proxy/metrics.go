package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/labstack/echo/v4"

	"github.com/mirror-proxy/mirror-proxy/storage"
)

// The metrics are written in Prometheus' text exposition format by the few
// lines below rather than with client_golang: that library and its
// protobuf dependencies would add about 4 MB to a binary whose image is to
// stay under 30 MB, for counters and two gauges.

// counterVec is a counter family with labels.
type counterVec struct {
	name, help string
	labels     []string
	mu         sync.Mutex
	values     map[string]*atomic.Int64 // joined label values → count
}

func newCounterVec(name, help string, labels ...string) *counterVec {
	return &counterVec{name: name, help: help, labels: labels, values: map[string]*atomic.Int64{}}
}

func (c *counterVec) with(values ...string) *atomic.Int64 {
	key := strings.Join(values, "\xff")
	c.mu.Lock()
	v, ok := c.values[key]
	if !ok {
		v = new(atomic.Int64)
		c.values[key] = v
	}
	c.mu.Unlock()
	return v
}

func (c *counterVec) write(w io.Writer) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n", c.name, c.help, c.name)
	c.mu.Lock()
	keys := make([]string, 0, len(c.values))
	for k := range c.values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		vals := strings.Split(k, "\xff")
		var parts []string
		for i, l := range c.labels {
			if i < len(vals) {
				parts = append(parts, l+"="+strconv.Quote(vals[i]))
			}
		}
		lbl := ""
		if len(parts) > 0 {
			lbl = "{" + strings.Join(parts, ",") + "}"
		}
		fmt.Fprintf(w, "%s%s %d\n", c.name, lbl, c.values[k].Load())
	}
	c.mu.Unlock()
}

// counter is a counter without labels.
type counter struct{ *counterVec }

func newCounter(name, help string) counter { return counter{newCounterVec(name, help)} }
func (c counter) Inc()                     { c.with().Add(1) }
func (c counter) Add(n float64)            { c.with().Add(int64(n)) }

// gauge is a settable value.
type gauge struct {
	name, help string
	v          atomic.Int64
	set        atomic.Bool
}

func (g *gauge) Set(v float64) { g.v.Store(int64(v)); g.set.Store(true) }

// metrics are exported on GET /metrics in Prometheus' text format.
type metrics struct {
	requests         *counterVec
	reqCounters      sync.Map // reqKey → *atomic.Int64 of requests
	cache            *counterVec
	memHit           *atomic.Int64
	memMiss          *atomic.Int64
	upstream         *counterVec
	upstreamBytes    counter
	storageOps       *counterVec
	flightWaits      counter
	leaseWaits       counter
	leaseTimeouts    counter
	redisErrors      counter
	redisUp          *gauge
	storageUp        *gauge
	stale            counter
	notStored        *counterVec
	aborted          *counterVec
	cacheWriteErrors counter
	families         []interface{ write(io.Writer) }
}

func newMetrics() *metrics {
	m := &metrics{
		requests:         newCounterVec("mirror_http_requests_total", "HTTP requests by route template, method and status.", "route", "method", "status"),
		cache:            newCounterVec("mirror_cache_lookups_total", "Lookups per tier (memory, disk, storage) and result (hit, miss).", "tier", "result"),
		upstream:         newCounterVec("mirror_upstream_fetches_total", "Upstream requests by kind (metadata, file) and result (ok, not_modified, not_found, error).", "kind", "result"),
		upstreamBytes:    newCounter("mirror_upstream_file_bytes_total", "Bytes of files downloaded from upstreams."),
		storageOps:       newCounterVec("mirror_storage_operations_total", "Storage calls by operation and result (ok, not_found, exists, error).", "op", "result"),
		flightWaits:      newCounter("mirror_singleflight_waits_total", "Requests that joined a download already running in this process."),
		leaseWaits:       newCounter("mirror_lease_waits_total", "Downloads that waited for another replica's lease."),
		leaseTimeouts:    newCounter("mirror_lease_timeouts_total", "Waits for another replica's lease that gave up (503 to the client)."),
		redisErrors:      newCounter("mirror_redis_errors_total", "Redis calls that failed (the proxy carries on without coordination)."),
		redisUp:          &gauge{name: "mirror_redis_up", help: "1 when the last Redis call succeeded, 0 when it failed; absent without REDIS_URL."},
		storageUp:        &gauge{name: "mirror_storage_up", help: "1 when the last background storage check succeeded, else 0."},
		stale:            newCounter("mirror_stale_responses_total", "Metadata responses served stale because the upstream failed."),
		aborted:          newCounterVec("mirror_aborted_responses_total", "Responses cut after their headers were sent, by reason (client gone, download failed, storage read failed).", "reason"),
		cacheWriteErrors: newCounter("mirror_disk_cache_write_errors_total", "Disk cache writes that failed (the response was served anyway)."),
		notStored:        newCounterVec("mirror_not_stored_total", "Documents and files served to clients but not stored (storage failed).", "kind"),
	}
	m.memHit, m.memMiss = m.cache.with("memory", "hit"), m.cache.with("memory", "miss")
	m.families = []interface{ write(io.Writer) }{m.requests, m.cache, m.upstream, m.upstreamBytes, m.storageOps,
		m.flightWaits, m.leaseWaits, m.leaseTimeouts, m.redisErrors, m.stale, m.notStored, m.aborted, m.cacheWriteErrors}
	return m
}

func (m *metrics) handler() echo.HandlerFunc {
	return func(c echo.Context) error {
		w := c.Response()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		for _, f := range m.families {
			f.write(w)
		}
		for _, g := range []*gauge{m.redisUp, m.storageUp} {
			if g.set.Load() {
				fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n%s %d\n", g.name, g.help, g.name, g.name, g.v.Load())
			}
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		fmt.Fprintf(w, "# HELP go_goroutines Number of goroutines.\n# TYPE go_goroutines gauge\ngo_goroutines %d\n", runtime.NumGoroutine())
		fmt.Fprintf(w, "# HELP go_memstats_heap_inuse_bytes Heap bytes in use.\n# TYPE go_memstats_heap_inuse_bytes gauge\ngo_memstats_heap_inuse_bytes %d\n", ms.HeapInuse)
		fmt.Fprintf(w, "# HELP go_memstats_sys_bytes Bytes obtained from the OS.\n# TYPE go_memstats_sys_bytes gauge\ngo_memstats_sys_bytes %d\n", ms.Sys)
		return nil
	}
}

// tierCounter returns the lookup counter of a tier and result; the
// memory tier's are resolved once, since every warm request counts one.
func (m *metrics) tierCounter(tier, result string) *atomic.Int64 {
	if tier == "memory" {
		if result == "hit" {
			return m.memHit
		}
		return m.memMiss
	}
	return m.cache.with(tier, result)
}

func (m *metrics) hit(tier string)  { m.tierCounter(tier, "hit").Add(1) }
func (m *metrics) miss(tier string) { m.tierCounter(tier, "miss").Add(1) }

type reqKey struct {
	route, method string
	status        int
}

// observe counts a request; the counter is found without allocating.
func (m *metrics) observe(c echo.Context) {
	method := c.Request().Method
	if !knownMethods[method] {
		method = "other"
	}
	k := reqKey{c.Path(), method, c.Response().Status}
	if v, ok := m.reqCounters.Load(k); ok {
		v.(*atomic.Int64).Add(1)
		return
	}
	route := k.route
	if route == "" {
		route = "unmatched"
	}
	v := m.requests.with(route, k.method, strconv.Itoa(k.status))
	m.reqCounters.Store(k, v)
	v.Add(1)
}

func storageResult(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, storage.ErrNotFound):
		return "not_found"
	case errors.Is(err, storage.ErrExists):
		return "exists"
	}
	return "error"
}

// countedStore counts every storage call by operation and result.
type countedStore struct {
	storage.Store
	m *metrics
}

func (s countedStore) count(op string, err error) { s.m.storageOps.with(op, storageResult(err)).Add(1) }

func (s countedStore) Get(ctx context.Context, key string, rng storage.Range) (io.ReadCloser, storage.Info, error) {
	rc, info, err := s.Store.Get(ctx, key, rng)
	s.count("get", err)
	return rc, info, err
}

func (s countedStore) Stat(ctx context.Context, key string) (storage.Info, error) {
	info, err := s.Store.Stat(ctx, key)
	s.count("stat", err)
	return info, err
}

func (s countedStore) Put(ctx context.Context, key string, r io.Reader, opts storage.PutOptions) error {
	err := s.Store.Put(ctx, key, r, opts)
	s.count("put", err)
	return err
}

func (s countedStore) Delete(ctx context.Context, key string) error {
	err := s.Store.Delete(ctx, key)
	s.count("delete", err)
	return err
}

func (s countedStore) List(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	err := s.Store.List(ctx, prefix, fn)
	s.count("list", err)
	return err
}
