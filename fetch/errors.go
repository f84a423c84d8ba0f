package fetch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	neturl "net/url"

	"github.com/mirror-proxy/mirror-proxy/httpx"
)

// ErrOffline: the mirror never contacts its upstream (UPSTREAM_OFFLINE).
var ErrOffline = errors.New("the mirror is offline")

// upstream404 is httpx.ErrNotFound naming the upstream URL that answered
// 404, so that a mirror URL missing a path segment (a PyPI index without
// /simple) shows in the answer.
type upstream404 struct{ url string }

func (e *upstream404) Error() string        { return "not found: the upstream answered 404 for " + e.url }
func (e *upstream404) Is(target error) bool { return target == httpx.ErrNotFound }

// TransportError is the answer to a request to u that got no response
// (err): a 504 for a timeout, else a 502; a 404 when the mirror is
// offline.
func TransportError(u string, err error) *httpx.UpstreamError {
	url := httpx.SafeURL(u)
	if errors.Is(err, ErrOffline) {
		// The operator's choice: what storage does not hold does not exist.
		return &httpx.UpstreamError{Status: http.StatusNotFound, Msg: fmt.Sprintf("not in storage, and the mirror is offline (UPSTREAM_OFFLINE): %s was not fetched", url)}
	}
	var ue *neturl.Error
	if errors.As(err, &ue) {
		err = ue.Err // its text repeats the URL, query included
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return &httpx.UpstreamError{Status: http.StatusGatewayTimeout, Msg: fmt.Sprintf("upstream %s timed out: %v", url, err)}
	}
	return &httpx.UpstreamError{Status: http.StatusBadGateway, Msg: fmt.Sprintf("upstream %s unreachable: %v", url, err)}
}

// StatusError is the answer to an upstream's unexpected status (resp, to
// a request to u): 503 with Retry-After when it is rate limited or
// unavailable, 504 for its timeouts, else 502 (never a 404).
func StatusError(u string, resp *http.Response) *httpx.UpstreamError {
	url := httpx.SafeURL(u)
	e := &httpx.UpstreamError{Status: http.StatusBadGateway, Msg: fmt.Sprintf("upstream %s answered %s", url, resp.Status)}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		e.Status = http.StatusServiceUnavailable
		e.RetryAfter = resp.Header.Get("Retry-After")
		if e.RetryAfter == "" {
			e.RetryAfter = "60"
		}
		e.Msg += " (rate limited)"
	case resp.StatusCode == http.StatusServiceUnavailable:
		e.Status = http.StatusServiceUnavailable
		e.RetryAfter = resp.Header.Get("Retry-After")
	case resp.StatusCode == http.StatusGatewayTimeout:
		e.Status = http.StatusGatewayTimeout
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		e.Msg += ": check the mirror's upstream credentials (MIRRORS auth)"
	}
	return e
}
