package proxy

import (
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mirror-proxy/mirror-proxy/fetch"
	"github.com/mirror-proxy/mirror-proxy/httpx"
	"github.com/mirror-proxy/mirror-proxy/internal/buildinfo"
	"github.com/mirror-proxy/mirror-proxy/mirror"
	"github.com/mirror-proxy/mirror-proxy/policy"
)

// The status page (GET / and /-/status): what each mirror is, whether it
// is healthy, what it has served and how to point a client at it, as
// server-rendered HTML without external assets under a strict
// Content-Security-Policy (its stylesheet and the copy buttons' script are
// served by the proxy itself; the page works without the script), or as
// JSON for Accept: application/json. Under access tokens it shows only
// what the reader may read: anonymous readers see each mirror's name and
// health only.

//go:embed status/status.html status/status.css status/status.js
var statusFiles embed.FS

var statusTemplate = template.Must(template.ParseFS(statusFiles, "status/status.html"))

// statusCSP allows the proxy's own stylesheet and script, nothing else.
const statusCSP = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// upstreamState is what a mirror's upstream requests have shown lately.
type upstreamState struct {
	lastOK    atomic.Int64 // unix nanoseconds
	mu        sync.Mutex
	lastErrAt time.Time
	lastErr   string
}

func (u *upstreamState) record(outcome string, status int, err error) {
	now := time.Now()
	switch outcome {
	case "2xx", "3xx", "4xx":
		u.lastOK.Store(now.UnixNano())
		return
	}
	msg := outcome
	if err != nil {
		msg = outcome + ": " + httpx.Truncate(err.Error(), 200)
	} else if status != 0 {
		msg = http.StatusText(status)
	}
	u.mu.Lock()
	u.lastErrAt, u.lastErr = now, msg
	u.mu.Unlock()
}

// Status is the status page's data (also its JSON form).
type Status struct {
	Version  string         `json:"version"`
	Time     time.Time      `json:"time"`
	Health   StatusHealth   `json:"health"`
	Mirrors  []MirrorStatus `json:"mirrors"`
	Totals   *StatusTotals  `json:"totals,omitempty"`
	Limited  bool           `json:"limited"` // some details are hidden from this reader
	LoginURL string         `json:"-"`
}

// StatusHealth is the server's own health (as /readyz).
type StatusHealth struct {
	Status  string            `json:"status"`
	Storage string            `json:"storage"`
	Redis   string            `json:"redis,omitempty"`
	Other   map[string]string `json:"other,omitempty"` // OSV data ("osv_<ecosystem>")
}

// MirrorStatus is one mirror; the fields after Health are shown only to
// readers who may read the mirror.
type MirrorStatus struct {
	Name   string `json:"name"`
	Health string `json:"health"` // ok, failing, offline, hosted only, no requests yet
	Type   string `json:"type,omitempty"`

	Upstream    string        `json:"upstream,omitempty"`
	Hosted      bool          `json:"hosted,omitempty"`
	Public      bool          `json:"public,omitempty"`
	Policies    []string      `json:"policies,omitempty"`
	LastSuccess *time.Time    `json:"last_success,omitempty"`
	LastError   *StatusError  `json:"last_error,omitempty"`
	Circuit     string        `json:"circuit,omitempty"`
	Counts      *StatusCounts `json:"counts,omitempty"`
	Client      string        `json:"client,omitempty"`
	Detailed    bool          `json:"-"`
	Mount       string        `json:"url,omitempty"`
}

// StatusError is an upstream's last failure.
type StatusError struct {
	At      time.Time `json:"at"`
	Message string    `json:"message"`
}

// StatusCounts are a mirror's requests since the process started.
type StatusCounts struct {
	Requests    int64 `json:"requests"`
	CacheHits   int64 `json:"cache_hits"`   // lookups answered by a tier (memory, disk, storage)
	CacheMisses int64 `json:"cache_misses"` // lookups a tier could not answer
	Refused     int64 `json:"refused"`      // 403: policies and scopes
	Errors      int64 `json:"errors"`       // 5xx
	BytesServed int64 `json:"bytes_served"`
}

// StatusTotals are the process's cache and upstream counts.
type StatusTotals struct {
	CacheHits      map[string]int64 `json:"cache_hits"`
	CacheMisses    map[string]int64 `json:"cache_misses"`
	UpstreamOK     int64            `json:"upstream_ok"`
	UpstreamFailed int64            `json:"upstream_failed"`
	BytesServed    int64            `json:"bytes_served"`
}

// readable reports which mirrors r may read in detail (all: every one).
func (s *Server) readable(r *http.Request) (all bool, may func(string) bool, known bool) {
	if len(s.opts.Tokens) == 0 {
		return true, func(string) bool { return true }, true
	}
	presented, ok := presentedToken(r)
	if !ok {
		return false, func(string) bool { return false }, false
	}
	t := s.lookupToken(presented)
	if t == nil || !t.Read {
		return false, func(string) bool { return false }, t != nil
	}
	return t.Mirrors == nil, func(name string) bool { return t.Mirrors == nil || t.Mirrors[name] }, true
}

func (s *Server) statusPage(c echo.Context) error {
	r := c.Request()
	all, may, known := s.readable(r)
	if r.URL.Query().Has("login") && !known {
		// The browser's own login prompt: a token as the password.
		c.Response().Header().Set("WWW-Authenticate", realm)
		return echo.NewHTTPError(http.StatusUnauthorized, "send a token as the password (any user name) to see the mirrors' details")
	}
	st := s.status(r, all, may)
	h := c.Response().Header()
	h.Set("Vary", "Accept, Authorization")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if wantsJSON(r) {
		return c.JSON(http.StatusOK, st)
	}
	h.Set("Content-Security-Policy", statusCSP)
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set(echo.HeaderContentType, "text/html; charset=utf-8")
	c.Response().WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	return statusTemplate.Execute(c.Response(), st)
}

// wantsJSON: Accept names application/json before (or without) text/html.
func wantsJSON(r *http.Request) bool {
	a := r.Header.Get("Accept")
	j, h := strings.Index(a, "application/json"), strings.Index(a, "text/html")
	return j >= 0 && (h < 0 || j < h)
}

func (s *Server) statusAsset(name, ctype string) echo.HandlerFunc {
	b, err := statusFiles.ReadFile("status/" + name)
	if err != nil {
		panic(err)
	}
	return func(c echo.Context) error {
		c.Response().Header().Set("Cache-Control", "public, max-age=3600")
		c.Response().Header().Set("X-Content-Type-Options", "nosniff")
		return c.Blob(http.StatusOK, ctype, b)
	}
}

// status gathers the page's data for a reader who may read every mirror
// (all) or those may allows.
func (s *Server) status(r *http.Request, all bool, may func(string) bool) *Status {
	st := &Status{Version: buildinfo.Read().Version, Time: time.Now().UTC().Truncate(time.Second)}
	st.Health = s.health()
	counts, totals := s.counts()
	names := make([]string, 0, len(s.mirrors))
	for n := range s.mirrors {
		names = append(names, n)
	}
	sort.Strings(names)
	base := s.opts.PublicURL
	if base == "" {
		base = httpx.RequestScheme(r) + "://" + r.Host
	}
	base = strings.TrimRight(base, "/")
	for _, n := range names {
		m := s.mirrors[n]
		ms := MirrorStatus{Name: n, Health: s.mirrorHealth(m)}
		if !may(n) {
			st.Limited = true
			st.Mirrors = append(st.Mirrors, ms)
			continue
		}
		ms.Detailed = true
		ms.Type, ms.Hosted, ms.Public = m.Type, m.Hosted, m.Public
		if m.URL != "" {
			ms.Upstream = httpx.SafeURL(m.URL)
		}
		ms.Policies = policyWords(m)
		if u := s.upstreams[n]; u != nil {
			if ok := u.lastOK.Load(); ok > 0 {
				t := time.Unix(0, ok).UTC().Truncate(time.Second)
				ms.LastSuccess = &t
			}
			u.mu.Lock()
			if !u.lastErrAt.IsZero() {
				ms.LastError = &StatusError{At: u.lastErrAt.UTC().Truncate(time.Second), Message: u.lastErr}
			}
			u.mu.Unlock()
		}
		// There is no upstream circuit breaker: a failing upstream is asked
		// again by each cold request (stale metadata is served meanwhile).
		ms.Circuit = "closed"
		if m.Offline {
			ms.Circuit = "open (offline: UPSTREAM_OFFLINE)"
		}
		ms.Counts = counts[n]
		if ms.Counts == nil {
			ms.Counts = &StatusCounts{}
		}
		if t, ok := mirror.Lookup(m.Type); ok {
			ms.Mount = base + t.MountsOf(n)[0]
			if t.Client != nil {
				ms.Client = t.Client(ms.Mount)
			}
		}
		st.Mirrors = append(st.Mirrors, ms)
	}
	if all {
		st.Totals = totals
	} else {
		st.LoginURL = "/-/status?login"
	}
	return st
}

// health is the server's health: what /readyz answers and the status
// page shows.
func (s *Server) health() StatusHealth {
	h := StatusHealth{Status: "ready", Storage: "not checked yet"}
	if p := s.storageHealth.Load(); p != nil {
		h.Storage = *p
	}
	if h.Storage != "ok" && h.Storage != "not checked yet" {
		h.Status = "degraded"
	}
	if s.opts.Coordinator != nil {
		h.Redis = "not checked yet"
		if p := s.redisHealth.Load(); p != nil {
			h.Redis = *p
		}
	}
	if s.feed != nil {
		// Old or missing advisory data is a warning, not unreadiness.
		h.Other = map[string]string{}
		for _, eco := range s.feed.Ecosystems() {
			age := s.feed.Age(eco)
			switch {
			case age < 0:
				h.Other["osv_"+eco] = "no data: nothing is blocked (mirror-proxy osv import)"
			case age > 3*s.opts.OSVRefresh:
				// Three refreshes missed (or an import grown old).
				h.Other["osv_"+eco] = fmt.Sprintf("warning: the data is %s old (more than 3 x OSV_REFRESH)", roundAge(age))
			default:
				h.Other["osv_"+eco] = "ok"
			}
		}
	}
	return h
}

// mirrorHealth is one word for a mirror's upstream.
func (s *Server) mirrorHealth(m Mirror) string {
	switch {
	case m.URL == "" && m.Hosted:
		return "ok (hosted only)"
	case m.Offline:
		return "offline"
	}
	u := s.upstreams[m.Name]
	if u == nil {
		return "no requests yet"
	}
	ok := u.lastOK.Load()
	u.mu.Lock()
	errAt := u.lastErrAt
	u.mu.Unlock()
	switch {
	case ok == 0 && errAt.IsZero():
		return "no requests yet"
	case !errAt.IsZero() && errAt.UnixNano() > ok:
		return "failing"
	}
	return "ok"
}

// policyWords says a mirror's policies in words (never the rules' names:
// a reader learns how many rules there are, not which packages).
func policyWords(m Mirror) []string {
	var out []string
	if m.Cooldown.Age > 0 {
		w := "cooldown: versions younger than " + policy.Duration(m.Cooldown.Age) + " are hidden"
		if n := len(m.Cooldown.Exempt); n > 0 {
			w += " (" + plural(n, "exemption") + ")"
		}
		out = append(out, w)
	}
	if n := len(m.Rules.Allow); n > 0 {
		out = append(out, "allow list: only "+plural(n, "pattern")+" served")
	}
	if n := len(m.Rules.Deny); n > 0 {
		out = append(out, plural(n, "deny rule"))
	}
	if a := m.Advisories; a != nil {
		w := "advisories: blocks " + strings.Join(a.Block, ", ")
		if a.Report {
			w = "advisories (report only): marks " + strings.Join(a.Block, ", ")
		}
		if len(a.Ignore) > 0 {
			w += " (" + plural(len(a.Ignore), "advisory") + " ignored)"
		}
		out = append(out, w)
	}
	if len(out) == 0 {
		out = append(out, "none")
	}
	out = append(out, "dated snapshots: /"+m.Name+"/@YYYY-MM-DD/")
	return out
}

func plural(n int, what string) string {
	s := strconv.Itoa(n) + " " + what
	if n != 1 {
		if strings.HasSuffix(what, "y") {
			return s[:len(s)-1] + "ies"
		}
		return s + "s"
	}
	return s
}

// counts reads the metrics registry: each mirror's requests, refusals,
// errors and bytes (by route template), and the process's totals.
func (s *Server) counts() (map[string]*StatusCounts, *StatusTotals) {
	per := map[string]*StatusCounts{}
	tot := &StatusTotals{CacheHits: map[string]int64{}, CacheMisses: map[string]int64{}}
	fams, err := s.core.Metrics().Gather()
	if err != nil {
		return per, tot
	}
	of := func(name string) *StatusCounts {
		if _, ok := s.mirrors[name]; !ok {
			return nil
		}
		c := per[name]
		if c == nil {
			c = &StatusCounts{}
			per[name] = c
		}
		return c
	}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			v := int64(m.GetCounter().GetValue())
			switch f.GetName() {
			case "mirror_http_requests_total":
				if c := of(mirrorOfRoute(labels["route"])); c != nil {
					c.Requests += v
					switch st := labels["status"]; {
					case st == "403":
						c.Refused += v
					case strings.HasPrefix(st, "5"):
						c.Errors += v
					}
				}
			case "mirror_http_response_bytes_total":
				tot.BytesServed += v
				if c := of(mirrorOfRoute(labels["route"])); c != nil {
					c.BytesServed += v
				}
			case "mirror_cache_lookups_total":
				c := of(labels["mirror"])
				if labels["result"] == "hit" {
					tot.CacheHits[labels["tier"]] += v
					if c != nil {
						c.CacheHits += v
					}
				} else {
					tot.CacheMisses[labels["tier"]] += v
					if c != nil {
						c.CacheMisses += v
					}
				}
			case "mirror_upstream_fetches_total":
				if labels["result"] == "error" {
					tot.UpstreamFailed += v
				} else {
					tot.UpstreamOK += v
				}
			}
		}
	}
	return per, tot
}

// upstreamResult is a mirror's fetch.ClientOptions.Result: its health for
// the status page, and mirror_upstream_results_total.
func (s *Server) upstreamResult(name string) func(*http.Response, error) {
	u := &upstreamState{}
	s.upstreams[name] = u
	count := s.upstreamResults
	return func(resp *http.Response, err error) {
		outcome := fetch.UpstreamOutcome(resp, err)
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		u.record(outcome, status, err)
		count(name, outcome)
	}
}
