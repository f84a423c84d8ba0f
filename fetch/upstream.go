package fetch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mirror-proxy/mirror-proxy/httpx"
	"github.com/mirror-proxy/mirror-proxy/policy"
)

// HostAuth is a credential for one upstream origin. It is sent only there
// (same scheme, host and port), on every request and every redirect hop
// that goes there, and never anywhere else; in particular never over http
// when it was configured for https.
type HostAuth struct {
	// Host is host, host:port or scheme://host[:port]; empty means the
	// mirror URL's origin. Without a scheme it is the mirror's scheme for
	// the mirror's own host, https for any other; without a port, the
	// scheme's default.
	Host     string `json:"host"`
	Username string `json:"username"`
	Password string `json:"password"`
	// Bearer is sent as "Authorization: Bearer <token>".
	Bearer string `json:"bearer"`
	// GitHubToken is sent as "Authorization: token <token>" (GitHub's API);
	// its host defaults to api.github.com.
	GitHubToken string `json:"githubToken"`
}

// Validate checks that exactly one kind of credential is given.
func (a HostAuth) Validate() error {
	kinds := 0
	if a.Username != "" || a.Password != "" {
		kinds++
	}
	if a.Bearer != "" {
		kinds++
	}
	if a.GitHubToken != "" {
		kinds++
	}
	if kinds != 1 {
		return errors.New("each entry needs exactly one of username/password, bearer or githubToken")
	}
	if a.Host == "" {
		return nil // the mirror's own origin
	}
	if _, err := originOf(a.Host, "https", ""); err != nil {
		return err
	}
	return nil
}

// originOf is the "scheme://host:port" a credential's Host names;
// defScheme applies when it names none (mirrorHost: the mirror's host,
// whose scheme is defScheme; any other host defaults to https).
func originOf(host, defScheme, mirrorHost string) (string, error) {
	scheme := ""
	if s, rest, ok := strings.Cut(host, "://"); ok {
		scheme, host = strings.ToLower(s), rest
		if scheme != "http" && scheme != "https" {
			return "", fmt.Errorf("host %q: the scheme must be http or https", host)
		}
	}
	if host == "" || strings.ContainsAny(host, "/@ ?#") {
		return "", fmt.Errorf("host %q must be host, host:port or scheme://host[:port]", host)
	}
	u := &url.URL{Host: host}
	if scheme == "" {
		scheme = "https"
		if strings.EqualFold(u.Hostname(), mirrorHost) {
			scheme = defScheme
		}
	}
	u.Scheme = scheme
	return origin(u), nil
}

// origin is "scheme://host:port" of u, the port made explicit.
func origin(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "443"
		if u.Scheme == "http" {
			port = "80"
		}
	}
	return strings.ToLower(u.Scheme + "://" + net.JoinHostPort(u.Hostname(), port))
}

func (a HostAuth) header() string {
	switch {
	case a.Bearer != "":
		return "Bearer " + a.Bearer
	case a.GitHubToken != "":
		return "token " + a.GitHubToken
	}
	r := http.Request{Header: http.Header{}}
	r.SetBasicAuth(a.Username, a.Password)
	return r.Header.Get("Authorization")
}

// errHostRefused: a URL from upstream metadata (or a redirect) leads to a
// host the mirror may not fetch from.
type errHostRefused struct{ host, why string }

func (e *errHostRefused) Error() string {
	return fmt.Sprintf("refused to fetch from %s: %s", e.host, e.why)
}

// hostPolicy decides which hosts a mirror's client may reach. The mirror's
// own origin (scheme, host and port, as configured: not any port of its
// host, or metadata could make the proxy probe them) and the hosts the
// operator listed (fileHosts) are trusted at any address, private or
// loopback included: the operator chose them. The ecosystem's default file
// hosts (and any host at all, with "*") must resolve to public addresses,
// so that metadata (or DNS) cannot point the proxy at 127.0.0.1,
// 169.254.169.254 or the internal network.
type hostPolicy struct {
	origin     string          // the mirror's "scheme://host:port" ("" : none)
	originAddr string          // its "host:port", as dialled
	trusted    map[string]bool // hostnames reachable at any address
	public     map[string]bool // hostnames reachable at public addresses only
	any        bool            // "*": every other host, public addresses only
}

func newHostPolicy(mirror *url.URL, defaults, fileHosts []string) *hostPolicy {
	p := &hostPolicy{trusted: map[string]bool{}, public: map[string]bool{}}
	if mirror != nil && mirror.Host != "" {
		p.origin = origin(mirror)
		p.originAddr = strings.TrimPrefix(strings.TrimPrefix(p.origin, "http://"), "https://")
	}
	for _, h := range defaults {
		p.public[h] = true
	}
	for _, h := range fileHosts {
		if h == "*" {
			p.any = true
			continue
		}
		p.trusted[strings.ToLower(h)] = true
	}
	// An HTTP proxy from the environment is the operator's choice too.
	if pu, err := http.ProxyFromEnvironment(&http.Request{URL: &url.URL{Scheme: "https", Host: "example.com"}}); err == nil && pu != nil {
		p.trusted[strings.ToLower(pu.Hostname())] = true
	}
	return p
}

// allowed reports whether u may be asked at all.
func (p *hostPolicy) allowed(u *url.URL) error {
	host := strings.ToLower(u.Hostname())
	if p.origin != "" && origin(u) == p.origin || p.trusted[host] || p.public[host] || p.any {
		return nil
	}
	return &errHostRefused{host, "not the mirror's origin (its scheme, host and port) nor one of its fileHosts"}
}

// internalIP reports addresses a file URL from metadata must never reach:
// loopback, private, link-local (cloud metadata services), unspecified
// and multicast.
func internalIP(ip net.IP) bool {
	return ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() ||
		// 100.64.0.0/10 (carrier-grade NAT) and 0.0.0.0/8.
		(ip.To4() != nil && (ip.To4()[0] == 0 || (ip.To4()[0] == 100 && ip.To4()[1]&0xc0 == 64)))
}

// dial connects to addr; a host that is not trusted is resolved here and
// reached only at a public address (so DNS cannot rebind it inward).
func (p *hostPolicy) dial(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if p.trusted[strings.ToLower(host)] || strings.EqualFold(addr, p.originAddr) {
			return d.DialContext(ctx, network, addr)
		}
		ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
		if err != nil {
			return nil, err
		}
		var lastErr error = &errHostRefused{host, "it resolves only to internal addresses (loopback, private or link-local)"}
		for _, ip := range ips {
			if internalIP(ip.IP) {
				continue
			}
			c, err := d.DialContext(ctx, network, net.JoinHostPort(ip.IP.String(), port))
			if err == nil {
				return c, nil
			}
			lastErr = err
		}
		return nil, lastErr
	}
}

// upstreamTransport sets (or strips) Authorization on every request,
// redirects included, according to the request's origin alone, and
// refuses hosts the policy does not allow.
type upstreamTransport struct {
	base    http.RoundTripper
	creds   map[string]string // "scheme://host:port" → Authorization value
	policy  *hostPolicy
	took    interface{ Observe(float64) } // time to response headers; may be nil
	adjust  func(*http.Response)          // may be nil
	result  func(*http.Response, error)   // may be nil
	offline bool                          // refuse every request (ErrOffline)
}

func (t *upstreamTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.offline {
		return nil, ErrOffline
	}
	if err := t.policy.allowed(r.URL); err != nil {
		return nil, err
	}
	auth, ok := t.creds[origin(r.URL)]
	if ua := r.Header.Get("User-Agent"); ok || r.Header.Get("Authorization") != "" || ua != userAgent {
		r = r.Clone(r.Context())
		r.Header.Del("Authorization")
		if ok {
			r.Header.Set("Authorization", auth)
		}
		// Every upstream request names the proxy, set here only; an
		// ecosystem may put the client's agent before it (setAgent).
		if !strings.HasSuffix(ua, " "+userAgent) {
			r.Header.Set("User-Agent", userAgent)
		}
	}
	start := time.Now()
	resp, err := t.base.RoundTrip(r)
	if t.took != nil {
		t.took.Observe(time.Since(start).Seconds())
	}
	if err == nil && t.adjust != nil {
		t.adjust(resp)
	}
	if t.result != nil {
		t.result(resp, err)
	}
	return resp, err
}

// UpstreamOutcome classifies an upstream request's result (metrics, the
// status page): "dns", "connect", "timeout", "error", "offline", or the
// response's status class ("2xx" ... "5xx").
func UpstreamOutcome(resp *http.Response, err error) string {
	if err != nil {
		var dnsErr *net.DNSError
		var opErr *net.OpError
		var netErr net.Error
		switch {
		case errors.Is(err, ErrOffline):
			return "offline"
		case errors.As(err, &dnsErr):
			return "dns"
		case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr) && netErr.Timeout():
			return "timeout"
		case errors.As(err, &opErr) && opErr.Op == "dial":
			return "connect"
		}
		return "error"
	}
	switch c := resp.StatusCode / 100; c {
	case 1, 2, 3, 4, 5:
		return string(rune('0'+c)) + "xx"
	}
	return "error"
}

// ClientOptions are what an ecosystem adds to a mirror's client.
type ClientOptions struct {
	// DefaultFileHosts: hosts files may come from besides the mirror's own.
	DefaultFileHosts []string
	// Took observes the time to response headers (may be nil).
	Took interface{ Observe(float64) }
	// Adjust, when set, sees every upstream response before the core does
	// (to turn a host's own way of saying "rate limited" into a 429).
	Adjust func(*http.Response)
	// Result, when set, learns how every upstream request ended (the
	// upstream's health and metrics).
	Result func(*http.Response, error)
}

// NewClient is the HTTP client of mirror m's upstream: requests time out
// after timeout, carry the mirror's credentials only to their own
// origins, and go only to the upstream's host and the file hosts o allows.
func NewClient(timeout time.Duration, m Mirror, o ClientOptions) *http.Client {
	mu, _ := url.Parse(m.URL)
	policy := newHostPolicy(mu, o.DefaultFileHosts, m.FileHosts)
	base := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           policy.dial(&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}),
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          200,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		ExpectContinueTimeout: time.Second,
		// Bodies are passed on as they come: ask for no transparent
		// decompression, so sizes and hashes are those of the real bytes.
		DisableCompression: true,
	}
	creds := map[string]string{}
	for _, a := range m.Auth {
		host := a.Host
		if host == "" {
			host = mu.Scheme + "://" + mu.Host
			if a.GitHubToken != "" {
				host = "https://api.github.com"
			}
		}
		if o, err := originOf(host, mu.Scheme, mu.Hostname()); err == nil {
			creds[o] = a.header()
		}
	}
	return &http.Client{
		Transport: &upstreamTransport{base: base, creds: creds, policy: policy, took: o.Took, adjust: o.Adjust, result: o.Result, offline: m.Offline},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 10 {
				return errors.New("stopped after 10 redirects")
			}
			if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				return fmt.Errorf("redirect to a non-HTTP URL %q refused", httpx.SafeURL(req.URL.String()))
			}
			return nil
		},
	}
}

// SplitUserinfo moves a password written into a mirror URL
// (https://user:pw@host/) into an auth entry for that URL's origin, so
// that the URL itself can be logged and shown.
func SplitUserinfo(m Mirror) Mirror {
	u, err := url.Parse(m.URL)
	if err != nil || u.User == nil {
		return m
	}
	pw, _ := u.User.Password()
	m.Auth = append([]HostAuth{{Host: u.Scheme + "://" + u.Host, Username: u.User.Username(), Password: pw}}, m.Auth...)
	u.User = nil
	m.URL = u.String()
	return m
}

// Mirror is one configured upstream, served under /<Name>/.
type Mirror struct {
	Name        string
	Type        string // a registered type (package mirror)
	URL         string // upstream base URL, no trailing slash
	TTL         time.Duration
	NotFoundTTL time.Duration
	Auth        []HostAuth
	// Public lets anonymous clients read the mirror when tokens are
	// configured (writes always need a write token).
	Public bool
	// FileHosts are the hosts, besides the mirror's own and its type's
	// defaults, that files named in its metadata may come from ("*": any
	// public host). Listed hosts may be on private addresses.
	FileHosts []string
	// Hosted makes the mirror accept uploads, kept under ArtifactPrefix;
	// URL may then be empty (a repository that only hosts).
	Hosted bool
	// Cooldown holds back what the upstream published too recently (it
	// never applies to hosted packages).
	Cooldown policy.Cooldown
	// Rules are the allow and deny lists (they never apply to hosted
	// packages either).
	Rules policy.Rules
	// Advisories, when set, is the mirror's advisories policy; the server
	// turns it into Rules.Advisor over the OSV data in storage.
	Advisories *policy.AdvisoriesConfig
	// Offline: the upstream is never contacted; only what storage holds
	// is served (UPSTREAM_OFFLINE, or the mirror's "offline").
	Offline bool
	// Options are settings of the mirror's type alone, by their MIRRORS
	// key (a Go mirror's "sumdb" and "noSumCheck"), checked by the type.
	Options map[string]json.RawMessage
}

// setAgent puts a client's agent before the proxy's User-Agent (control
// characters dropped, length bounded).
func setAgent(r *http.Request, agent string) {
	if agent == "" {
		return
	}
	agent = strings.Map(func(c rune) rune {
		if c < 0x20 || c == 0x7f {
			return -1
		}
		return c
	}, httpx.Truncate(agent, 200))
	r.Header.Set("User-Agent", agent+" "+userAgent)
}
