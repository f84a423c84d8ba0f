package fetch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	neturl "net/url"

	"github.com/mirror-proxy/mirror-proxy/hosted"
)

// ErrNotFound: the upstream said 404 (or the name is not in the mirrored
// metadata). It is the only error reported to clients as 404.
var ErrNotFound = errors.New("not found")

// ErrOffline: the mirror never contacts its upstream (UPSTREAM_OFFLINE).
var ErrOffline = errors.New("the mirror is offline")

// upstream404 is errNotFound naming the upstream URL that answered 404,
// so that a mirror URL missing a path segment (a PyPI index without
// /simple) shows in the answer.
type upstream404 struct{ url string }

func (e *upstream404) Error() string        { return "not found: the upstream answered 404 for " + e.url }
func (e *upstream404) Is(target error) bool { return target == ErrNotFound }

// UpstreamError: the upstream failed and nothing stored could be served.
// Never a 404: a 404 makes Composer drop the package.
type UpstreamError struct {
	Status     int // 502, 503 or 504
	Msg        string
	RetryAfter string
	verify     bool // the bytes failed verification (digest, size, archive check)
}

func (e *UpstreamError) Error() string { return e.Msg }

func TransportError(u string, err error) *UpstreamError {
	url := SafeURL(u)
	if errors.Is(err, ErrOffline) {
		// The operator's choice: what storage does not hold does not exist.
		return &UpstreamError{Status: http.StatusNotFound, Msg: fmt.Sprintf("not in storage, and the mirror is offline (UPSTREAM_OFFLINE): %s was not fetched", url)}
	}
	var ue *neturl.Error
	if errors.As(err, &ue) {
		err = ue.Err // its text repeats the URL, query included
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return &UpstreamError{Status: http.StatusGatewayTimeout, Msg: fmt.Sprintf("upstream %s timed out: %v", url, err)}
	}
	return &UpstreamError{Status: http.StatusBadGateway, Msg: fmt.Sprintf("upstream %s unreachable: %v", url, err)}
}

func StatusError(u string, resp *http.Response) *UpstreamError {
	url := SafeURL(u)
	e := &UpstreamError{Status: http.StatusBadGateway, Msg: fmt.Sprintf("upstream %s answered %s", url, resp.Status)}
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

// ErrorOf maps an error of the fetch-through core to the one response
// clients see. It is the only place where errors become status codes.
func ErrorOf(err error) *HTTPError {
	var ue *UpstreamError
	var he *HTTPError
	switch {
	case errors.As(err, &he):
		return he
	case errors.Is(err, ErrNotFound):
		return &HTTPError{http.StatusNotFound, err.Error()}
	case errors.As(err, &ue):
		return &HTTPError{ue.Status, ue.Msg}
	case errors.Is(err, hosted.ErrUnavailable), errors.Is(err, hosted.ErrLockUnavailable):
		return &HTTPError{http.StatusServiceUnavailable, err.Error()}
	case errors.Is(err, hosted.ErrIndexFull):
		return &HTTPError{http.StatusRequestEntityTooLarge, err.Error()}
	case errors.Is(err, hosted.ErrConflict):
		return &HTTPError{http.StatusConflict, err.Error()}
	case errors.Is(err, context.Canceled):
		return &HTTPError{499, "client closed the request"}
	case errors.Is(err, context.DeadlineExceeded):
		return &HTTPError{http.StatusGatewayTimeout, "timed out"}
	}
	return &HTTPError{http.StatusBadGateway, err.Error()}
}

// RedirectTo sends the client to the canonical URL of what it asked for.
type RedirectTo struct{ URL string }

func (r *RedirectTo) Error() string { return "moved to " + r.URL }

func RetryAfterOf(err error) string {
	var ue *UpstreamError
	if errors.As(err, &ue) {
		return ue.RetryAfter
	}
	return ""
}
