package fetch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
)

// HTTPError is an answer with a status and a message, which handlers
// return as errors.
type HTTPError struct {
	Code int
	Msg  string
}

func (e *HTTPError) Error() string { return e.Msg }

func NewError(code int, msg string) error { return &HTTPError{Code: code, Msg: msg} }

func Redirect(w http.ResponseWriter, r *http.Request, code int, url string) error {
	http.Redirect(w, r, url, code)
	return nil
}

func WriteJSON(w http.ResponseWriter, code int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return WriteBlob(w, code, "application/json", append(b, '\n'))
}

func WriteText(w http.ResponseWriter, code int, s string) error {
	return WriteBlob(w, code, "text/plain; charset=utf-8", []byte(s))
}

func WriteBlob(w http.ResponseWriter, code int, ctype string, b []byte) error {
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Content-Length", fmt.Sprint(len(b)))
	w.WriteHeader(code)
	_, err := w.Write(b)
	return err
}

func NoContent(w http.ResponseWriter, code int) error {
	w.WriteHeader(code)
	return nil
}

// Handler serves one request with net/http's types; an error it returns
// becomes the response (handleError), unless the response has started.
type Handler func(w http.ResponseWriter, r *http.Request) error

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

// Truncate caps s at n bytes (client input echoed in messages).
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// QuoteName is a client-supplied name as error messages echo it: quoted,
// at most 100 bytes.
func QuoteName(s string) string { return fmt.Sprintf("%q", Truncate(s, 100)) }

// RoutePrefix returns the mount point a request came in on ("/N" or
// "/mirror/N"), so that URLs written for the client keep that form.
func RoutePrefix(path, name string) string {
	if strings.HasPrefix(path, "/mirror/"+name+"/") {
		return "/mirror/" + name
	}
	return "/" + name
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

// IsNotFound reports whether err says "not found": the upstream's 404, or
// a 404 of this proxy's own (a name not in the mirrored metadata).
func IsNotFound(err error) bool {
	var he *HTTPError
	return errors.Is(err, ErrNotFound) || errors.As(err, &he) && he.Code == http.StatusNotFound
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
