package proxy

import (
	"context"
	"errors"
	"io"
	"strconv"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mirror-proxy/mirror-proxy/storage"
)

// metrics are exported on GET /metrics in Prometheus' text format.
type metrics struct {
	reg           *prometheus.Registry
	requests      *prometheus.CounterVec
	cache         *prometheus.CounterVec
	upstream      *prometheus.CounterVec
	upstreamBytes prometheus.Counter
	storageOps    *prometheus.CounterVec
	flightWaits   prometheus.Counter
	leaseWaits    prometheus.Counter
	leaseTimeouts prometheus.Counter
	redisErrors   prometheus.Counter
	redisUp       prometheus.Gauge
	stale         prometheus.Counter
	notStored     *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mirror_http_requests_total",
			Help: "HTTP requests by route template, method and status."}, []string{"route", "method", "status"}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mirror_cache_lookups_total",
			Help: "Lookups per tier (memory, disk, storage) and result (hit, miss)."}, []string{"tier", "result"}),
		upstream: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mirror_upstream_fetches_total",
			Help: "Upstream requests by kind (metadata, file) and result (ok, not_modified, not_found, error)."}, []string{"kind", "result"}),
		upstreamBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "mirror_upstream_file_bytes_total",
			Help: "Bytes of files downloaded from upstreams."}),
		storageOps: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mirror_storage_operations_total",
			Help: "Storage calls by operation and result (ok, not_found, exists, error)."}, []string{"op", "result"}),
		flightWaits: prometheus.NewCounter(prometheus.CounterOpts{Name: "mirror_singleflight_waits_total",
			Help: "Requests that joined a download already running in this process."}),
		leaseWaits: prometheus.NewCounter(prometheus.CounterOpts{Name: "mirror_lease_waits_total",
			Help: "Downloads that waited for another replica's lease."}),
		leaseTimeouts: prometheus.NewCounter(prometheus.CounterOpts{Name: "mirror_lease_timeouts_total",
			Help: "Waits for another replica's lease that gave up (503 to the client)."}),
		redisErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "mirror_redis_errors_total",
			Help: "Redis calls that failed (the proxy carries on without coordination)."}),
		redisUp: prometheus.NewGauge(prometheus.GaugeOpts{Name: "mirror_redis_up",
			Help: "1 when the last Redis call succeeded, 0 when it failed, absent without REDIS_URL."}),
		stale: prometheus.NewCounter(prometheus.CounterOpts{Name: "mirror_stale_responses_total",
			Help: "Metadata responses served stale because the upstream failed."}),
		notStored: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mirror_not_stored_total",
			Help: "Documents and files served to clients but not stored (storage failed)."}, []string{"kind"}),
	}
	m.reg.MustRegister(m.requests, m.cache, m.upstream, m.upstreamBytes, m.storageOps, m.flightWaits,
		m.leaseWaits, m.leaseTimeouts, m.redisErrors, m.stale, m.notStored,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() echo.HandlerFunc {
	return echo.WrapHandler(promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
}

func (m *metrics) hit(tier string)  { m.cache.WithLabelValues(tier, "hit").Inc() }
func (m *metrics) miss(tier string) { m.cache.WithLabelValues(tier, "miss").Inc() }

func (m *metrics) observe(c echo.Context) {
	route := c.Path()
	if route == "" {
		route = "unmatched"
	}
	m.requests.WithLabelValues(route, c.Request().Method, strconv.Itoa(c.Response().Status)).Inc()
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

func (s countedStore) Get(ctx context.Context, key string, rng storage.Range) (io.ReadCloser, storage.Info, error) {
	rc, info, err := s.Store.Get(ctx, key, rng)
	s.m.storageOps.WithLabelValues("get", storageResult(err)).Inc()
	return rc, info, err
}

func (s countedStore) Stat(ctx context.Context, key string) (storage.Info, error) {
	info, err := s.Store.Stat(ctx, key)
	s.m.storageOps.WithLabelValues("stat", storageResult(err)).Inc()
	return info, err
}

func (s countedStore) Put(ctx context.Context, key string, r io.Reader, opts storage.PutOptions) error {
	err := s.Store.Put(ctx, key, r, opts)
	s.m.storageOps.WithLabelValues("put", storageResult(err)).Inc()
	return err
}

func (s countedStore) Delete(ctx context.Context, key string) error {
	err := s.Store.Delete(ctx, key)
	s.m.storageOps.WithLabelValues("delete", storageResult(err)).Inc()
	return err
}

func (s countedStore) List(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	err := s.Store.List(ctx, prefix, fn)
	s.m.storageOps.WithLabelValues("list", storageResult(err)).Inc()
	return err
}
