package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	neturl "net/url"


	"github.com/mirror-proxy/mirror-proxy/hosted"
)

// errNotFound: the upstream said 404 (or the name is not in the mirrored
// metadata). It is the only error reported to clients as 404.
var errNotFound = errors.New("not found")

// upstream404 is errNotFound naming the upstream URL that answered 404,
// so that a mirror URL missing a path segment (a PyPI index without
// /simple) shows in the answer.
type upstream404 struct{ url string }

func (e *upstream404) Error() string        { return "not found: the upstream answered 404 for " + e.url }
func (e *upstream404) Is(target error) bool { return target == errNotFound }

// upstreamError: the upstream failed and nothing stored could be served.
// Never a 404: a 404 makes Composer drop the package.
type upstreamError struct {
	status     int // 502, 503 or 504
	msg        string
	retryAfter string
	verify     bool // the bytes failed verification (digest, size, archive check)
}

func (e *upstreamError) Error() string { return e.msg }

func transportError(u string, err error) *upstreamError {
	url := safeURL(u)
	var ue *neturl.Error
	if errors.As(err, &ue) {
		err = ue.Err // its text repeats the URL, query included
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return &upstreamError{status: http.StatusGatewayTimeout, msg: fmt.Sprintf("upstream %s timed out: %v", url, err)}
	}
	return &upstreamError{status: http.StatusBadGateway, msg: fmt.Sprintf("upstream %s unreachable: %v", url, err)}
}

func statusError(u string, resp *http.Response) *upstreamError {
	url := safeURL(u)
	e := &upstreamError{status: http.StatusBadGateway, msg: fmt.Sprintf("upstream %s answered %s", url, resp.Status)}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests ||
		(resp.StatusCode == http.StatusForbidden && resp.Header.Get("X-RateLimit-Remaining") == "0"):
		e.status = http.StatusServiceUnavailable
		e.retryAfter = resp.Header.Get("Retry-After")
		if e.retryAfter == "" {
			e.retryAfter = "60"
		}
		e.msg += " (rate limited)"
	case resp.StatusCode == http.StatusServiceUnavailable:
		e.status = http.StatusServiceUnavailable
		e.retryAfter = resp.Header.Get("Retry-After")
	case resp.StatusCode == http.StatusGatewayTimeout:
		e.status = http.StatusGatewayTimeout
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		e.msg += ": check the mirror's upstream credentials (MIRRORS auth)"
	}
	return e
}

// httpError maps an error of the fetch-through core to the one response
// clients see. It is the only place where errors become status codes.
func httpError(err error) *HTTPError {
	var ue *upstreamError
	var he *HTTPError
	switch {
	case errors.As(err, &he):
		return he
	case errors.Is(err, errNotFound):
		return &HTTPError{http.StatusNotFound, err.Error()}
	case errors.As(err, &ue):
		return &HTTPError{ue.status, ue.msg}
	case errors.Is(err, hosted.ErrUnavailable):
		return &HTTPError{http.StatusServiceUnavailable, err.Error()}
	case errors.Is(err, context.Canceled):
		return &HTTPError{499, "client closed the request"}
	case errors.Is(err, context.DeadlineExceeded):
		return &HTTPError{http.StatusGatewayTimeout, "timed out"}
	}
	return &HTTPError{http.StatusBadGateway, err.Error()}
}

// redirectTo sends the client to the canonical URL of what it asked for.
type redirectTo struct{ url string }

func (r *redirectTo) Error() string { return "moved to " + r.url }

func retryAfterOf(err error) string {
	var ue *upstreamError
	if errors.As(err, &ue) {
		return ue.retryAfter
	}
	return ""
}
