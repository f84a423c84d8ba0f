package httpx

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"

	"github.com/mirror-proxy/mirror-proxy/policy"
)

// RequestScheme is the scheme the client used: X-Forwarded-Proto when the
// request comes from a trusted proxy (TRUSTED_PROXIES), else the
// connection's own.
func RequestScheme(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := HeaderValue(r, "X-Forwarded-Proto"); (p == "http" || p == "https") && FromTrusted(r.RemoteAddr) {
		scheme = p
	}
	return scheme
}

// trustedProxies are the peers whose X-Forwarded-For and
// X-Forwarded-Proto are believed (TRUSTED_PROXIES); nil: loopback only.
// Process-wide: the binary runs one proxy.
var trustedProxies atomic.Pointer[[]netip.Prefix]

// TrustProxies sets the peers whose forwarding headers are believed (nil
// or empty: loopback only, the default).
func TrustProxies(p []netip.Prefix) {
	if len(p) == 0 {
		trustedProxies.Store(nil)
		return
	}
	trustedProxies.Store(&p)
}

// TrustedProxies are the peers TrustProxies set (loopback when none).
func TrustedProxies() []netip.Prefix {
	if p := trustedProxies.Load(); p != nil {
		return *p
	}
	return loopback
}

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// FromTrusted reports whether a peer address is a trusted proxy (a load
// balancer in front of the proxy): TRUSTED_PROXIES, loopback by default.
func FromTrusted(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, p := range TrustedProxies() {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// RoutePrefix returns the mount point a request came in on ("/N" or
// "/mirror/N"), so that URLs written for the client keep that form.
func RoutePrefix(path, name string) string {
	if strings.HasPrefix(path, "/mirror/"+name+"/") {
		return "/mirror/" + name
	}
	return "/" + name
}

// MountPrefix is the mount a request came in on, snapshot included
// ("/npm/@2025-06-01"): where URLs written for the client must lead.
func MountPrefix(r *http.Request, mirror string) string {
	p := RoutePrefix(r.URL.Path, mirror)
	if day := policy.SnapshotDay(r); day != "" {
		p += "/@" + day
	}
	return p
}

// BaseURL is the absolute URL of the mount a request came in on
// ("https://mirror.example.com/npm"): from publicURL (PUBLIC_URL) when
// set, else the request's scheme and Host. Only for the few absolute URLs
// an ecosystem must write.
func BaseURL(r *http.Request, publicURL, mirror string) string {
	base := publicURL
	if base == "" {
		base = RequestScheme(r) + "://" + r.Host
	}
	return base + MountPrefix(r, mirror)
}

// HeaderValue is r.Header.Get(key) for a key already in canonical form,
// without canonicalizing it again (a warm request reads several).
func HeaderValue(r *http.Request, key string) string {
	if v := r.Header[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// AcceptsGzip reports whether the client takes gzip-encoded documents.
func AcceptsGzip(r *http.Request) bool {
	rest := HeaderValue(r, "Accept-Encoding")
	for rest != "" {
		var part string
		part, rest, _ = strings.Cut(rest, ",")
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			q := strings.ReplaceAll(params, " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}

// SafeURL is u as it may appear in logs and error bodies: without
// userinfo, query or fragment (signed URLs carry tokens there).
func SafeURL(u string) string {
	pu, err := url.Parse(u)
	if err != nil {
		return "(unparsable URL)"
	}
	pu.User, pu.RawQuery, pu.ForceQuery, pu.Fragment, pu.RawFragment = nil, "", false, "", ""
	return pu.String()
}

type publisherKey struct{}

// AsPublisher marks a request's context as coming from a client whose
// token may publish on the mirror.
func AsPublisher(ctx context.Context) context.Context {
	return context.WithValue(ctx, publisherKey{}, true)
}

// IsPublisher reports whether r comes from a client whose token may
// publish on the mirror (on a mirror that needs tokens to read).
func IsPublisher(r *http.Request) bool {
	v, _ := r.Context().Value(publisherKey{}).(bool)
	return v
}
