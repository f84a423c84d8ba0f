package fetch

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/mirror-proxy/mirror-proxy/internal/buildinfo"
)

// Metrics are Prometheus' client_golang collectors in a registry of the
// server's own (so that several servers in one test process do not
// collide), exported on GET /metrics with the Go runtime and process
// collectors. Every label value is bounded: routes are templates,
// methods outside the standard ones are "other", statuses are numbers.

// counterVec is a counter family; with returns one member.
type counterVec struct{ *prometheus.CounterVec }

func (c counterVec) with(values ...string) prometheus.Counter { return c.WithLabelValues(values...) }

// Metrics are the server's collectors.
type Metrics struct {
	reg              *prometheus.Registry
	requests         *prometheus.CounterVec
	durations        *prometheus.HistogramVec
	bytesServed      *prometheus.CounterVec
	reqCounters      sync.Map // reqKey → *reqMetrics, so that a request allocates nothing
	cache            counterVec
	tiers            sync.Map // tierKey → prometheus.Counter, so that a lookup allocates nothing
	upstream         counterVec
	upstreamTime     *prometheus.HistogramVec
	upstreamBytes    counterVec
	storageOps       counterVec
	storageTime      *prometheus.HistogramVec
	inFlight         prometheus.Gauge
	mirrorOf         func(key string) string
	flightWaits      prometheus.Counter
	leaseWaits       prometheus.Counter
	leaseTimeouts    prometheus.Counter
	redisErrors      prometheus.Counter
	redisUp          prometheus.Gauge // nil without Redis
	storageUp        prometheus.Gauge
	stale            prometheus.Counter
	replayed         prometheus.Counter
	notStored        counterVec
	aborted          counterVec
	cacheWriteErrors prometheus.Counter
	corruptReads     prometheus.Counter
	isKnownMethod    func(string) bool
}

func newMetrics(withRedis bool) *Metrics {
	reg := prometheus.NewRegistry()
	f := promauto{reg}
	m := &Metrics{
		reg:      reg,
		requests: f.counterVec("mirror_http_requests_total", "HTTP requests by route template, method and status.", "route", "method", "status").CounterVec,
		durations: f.histogramVec("mirror_http_request_duration_seconds", "Time to serve a request, by route template and status class (2xx, 3xx, 4xx, 5xx).",
			[]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}, "route", "class"),
		bytesServed:   f.counterVec("mirror_http_response_bytes_total", "Response body bytes sent, by route template.", "route").CounterVec,
		cache:         f.counterVec("mirror_cache_lookups_total", "Lookups by mirror, tier (memory, disk, storage) and result (hit, miss).", "mirror", "tier", "result"),
		upstream:      f.counterVec("mirror_upstream_fetches_total", "Upstream fetches by mirror, kind (metadata, file) and result (ok, not_modified, not_found, error).", "mirror", "kind", "result"),
		upstreamTime:  f.histogramVec("mirror_upstream_request_duration_seconds", "Time from an upstream request to its response headers, by mirror.", prometheus.DefBuckets, "mirror"),
		upstreamBytes: f.counterVec("mirror_upstream_file_bytes_total", "Bytes of files downloaded from upstreams, by mirror.", "mirror"),
		storageOps:    f.counterVec("mirror_storage_operations_total", "Storage calls by operation and result (ok, not_found, exists, precondition_failed, error).", "op", "result"),
		storageTime: f.histogramVec("mirror_storage_operation_duration_seconds", "Time a storage call took, by operation (a get until its body is open; a put with its body).",
			[]float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}, "op"),
		inFlight:         f.gauge("mirror_http_requests_in_flight", "Requests being served now."),
		flightWaits:      f.counter("mirror_singleflight_waits_total", "Requests that joined a download already running in this process."),
		leaseWaits:       f.counter("mirror_lease_waits_total", "Downloads that waited for another replica's lease."),
		leaseTimeouts:    f.counter("mirror_lease_timeouts_total", "Waits for another replica's lease that gave up (503 to the client)."),
		redisErrors:      f.counter("mirror_redis_errors_total", "Redis calls that failed (the proxy carries on without coordination)."),
		storageUp:        f.gauge("mirror_storage_up", "1 when the last background storage check succeeded, else 0."),
		stale:            f.counter("mirror_stale_responses_total", "Metadata responses served stale because the upstream failed."),
		replayed:         f.counter("mirror_replayed_responses_total", "Warm document responses sent again as kept, without running their handler (counted in mirror_http_requests_total too)."),
		notStored:        f.counterVec("mirror_not_stored_total", "Documents and files served to clients but not stored (storage failed).", "kind"),
		aborted:          f.counterVec("mirror_aborted_responses_total", "Responses cut after their headers were sent, by reason (client gone, download failed, storage read failed).", "reason"),
		corruptReads:     f.counter("mirror_corrupt_stored_reads_total", "Reads of stored files whose bytes did not match their recorded digest (aborted; a mirrored file is dropped and fetched again)."),
		cacheWriteErrors: f.counter("mirror_disk_cache_write_errors_total", "Disk cache writes that failed (the response was served anyway)."),
	}
	if withRedis {
		m.redisUp = f.gauge("mirror_redis_up", "1 when the last Redis call (or the periodic check) succeeded, else 0.")
	}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	bi := buildinfo.Read()
	f.gaugeVec("mirror_build_info", "The running build: always 1, with the module version, VCS revision and Go version as labels.",
		"version", "revision", "go_version").WithLabelValues(bi.Version, bi.Revision, bi.GoVersion).Set(1)
	return m
}

// gaugeFunc registers a gauge read from fn at each scrape.
func (m *Metrics) gaugeFunc(name, help string, fn func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, fn))
}

// GaugeFunc registers a gauge of the server's (one set of labels, read
// from fn at each scrape), for what the core does not own (OSV data).
func (m *Metrics) GaugeFunc(name, help string, labels map[string]string, fn func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: labels}, fn))
}

// Counter registers a counter family of the server's, for what the core
// does not own (advisory refusals), and returns what adds one to a member
// (values of labels, in order; keep them bounded).
func (m *Metrics) Counter(name, help string, labels ...string) func(values ...string) {
	c := promauto{m.reg}.counterVec(name, help, labels...)
	return func(values ...string) { c.with(values...).Inc() }
}

// promauto registers what it makes in one registry.
type promauto struct{ r prometheus.Registerer }

func (f promauto) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	f.r.MustRegister(c)
	return c
}

func (f promauto) counterVec(name, help string, labels ...string) counterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	f.r.MustRegister(c)
	return counterVec{c}
}

func (f promauto) gauge(name, help string) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	f.r.MustRegister(g)
	return g
}

func (f promauto) gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	f.r.MustRegister(g)
	return g
}

func (f promauto) histogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
	f.r.MustRegister(h)
	return h
}

// Handler serves the registry (GET /metrics).
func (m *Metrics) Handler() http.Handler { return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}) }

// StorageUp records the background storage check.
func (m *Metrics) StorageUp(up bool) { m.storageUp.Set(b2f(up)) }

// Aborted counts a response cut after its headers.
func (m *Metrics) Aborted(reason string) { m.aborted.with(reason).Inc() }

// Stale counts a response served stale.
func (m *Metrics) Stale() { m.stale.Inc() }

// Replayed counts a response sent again as kept (see Replayable).
func (m *Metrics) Replayed() { m.replayed.Inc() }

// UpstreamObserver is the upstream response-time histogram of a mirror.
func (m *Metrics) UpstreamObserver(mirror string) prometheus.Observer {
	return m.upstreamTime.WithLabelValues(mirror)
}

func (m *Metrics) setRedisUp(up bool) {
	if m.redisUp != nil {
		m.redisUp.Set(b2f(up))
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

type tierKey struct{ mirror, tier, result string }

// tierCounter returns the lookup counter of a mirror, tier and result,
// found once, then without allocating (every warm request counts one).
func (m *Metrics) tierCounter(mirror, tier, result string) prometheus.Counter {
	k := tierKey{mirror, tier, result}
	if c, ok := m.tiers.Load(k); ok {
		return c.(prometheus.Counter)
	}
	c, _ := m.tiers.LoadOrStore(k, m.cache.with(mirror, tier, result))
	return c.(prometheus.Counter)
}

// mirrorLabel is the mirror a storage key belongs to, for labels: one of
// the configured mirrors or "other" (Config.MirrorOf), so labels stay
// bounded.
func (m *Metrics) mirrorLabel(key string) string {
	if m.mirrorOf == nil {
		return "other"
	}
	return m.mirrorOf(key)
}

func (m *Metrics) hit(key, tier string)  { m.tierCounter(m.mirrorLabel(key), tier, "hit").Inc() }
func (m *Metrics) miss(key, tier string) { m.tierCounter(m.mirrorLabel(key), tier, "miss").Inc() }

// fetched counts an upstream fetch of key.
func (m *Metrics) fetched(key, kind, result string) {
	m.upstream.with(m.mirrorLabel(key), kind, result).Inc()
}

// InFlight counts a request starting (1) or ending (-1).
func (m *Metrics) InFlight(delta float64) { m.inFlight.Add(delta) }

type reqKey struct {
	route, method string
	status        int
}

type reqMetrics struct {
	count    prometheus.Counter
	duration prometheus.Observer
	bytes    prometheus.Counter
}

var statusClasses = [...]string{"1xx", "1xx", "2xx", "3xx", "4xx", "5xx"}

// observe counts a request, its duration and its bytes; the collectors
// of a route, method and status are found once, then without allocating.
func (m *Metrics) Observe(route, method string, status int, size int64, took time.Duration) {
	if m.isKnownMethod != nil && !m.isKnownMethod(method) {
		method = "other"
	}
	if route == "" {
		route = "unmatched"
	}
	k := reqKey{route, method, status}
	v, ok := m.reqCounters.Load(k)
	if !ok {
		class := "other"
		if s := k.status / 100; s >= 1 && s <= 5 {
			class = statusClasses[s]
		}
		v, _ = m.reqCounters.LoadOrStore(k, &reqMetrics{
			count:    m.requests.WithLabelValues(route, method, strconv.Itoa(k.status)),
			duration: m.durations.WithLabelValues(route, class),
			bytes:    m.bytesServed.WithLabelValues(route),
		})
	}
	r := v.(*reqMetrics)
	r.count.Inc()
	r.duration.Observe(took.Seconds())
	if size > 0 {
		r.bytes.Add(float64(size))
	}
}

// Gather reads every collector (the status page's counts).
func (m *Metrics) Gather() ([]*dto.MetricFamily, error) { return m.reg.Gather() }
