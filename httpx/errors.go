// Package httpx holds what every handler shares about HTTP: the errors
// that become answers (HTTPError, UpstreamError, ErrorOf, the one place
// where errors become status codes), the small response writers, and the
// facts a request carries (its scheme behind a trusted proxy, the mount it
// came in on, whether it takes gzip). It knows no ecosystem and no
// storage.
package httpx

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

// ErrNotFound: the upstream said 404 (or the name is not in the mirrored
// metadata). It is the only error reported to clients as 404.
var ErrNotFound = errors.New("not found")

// HTTPError is an answer with a status and a message, which handlers
// return as errors.
type HTTPError struct {
	Code int
	Msg  string
}

func (e *HTTPError) Error() string { return e.Msg }

// NewError is an answer with status code and message msg.
func NewError(code int, msg string) error { return &HTTPError{Code: code, Msg: msg} }

// BadRequest is a 400 whose message names the problem.
func BadRequest(format string, a ...any) error {
	return NewError(http.StatusBadRequest, fmt.Sprintf(format, a...))
}

// UpstreamError: the upstream failed and nothing stored could be served.
// Never a 404: a 404 makes Composer drop the package.
type UpstreamError struct {
	Status     int // 502, 503 or 504
	Msg        string
	RetryAfter string
	// Verify: the bytes failed verification (digest, size, archive check).
	Verify bool
}

func (e *UpstreamError) Error() string { return e.Msg }

// statusCoder is an error that knows its answer's status (the hosted
// repository's errors do): ErrorOf uses it.
type statusCoder interface{ HTTPStatus() int }

// ErrorOf maps an error to the one response clients see. It is the only
// place where errors become status codes.
func ErrorOf(err error) *HTTPError {
	var ue *UpstreamError
	var he *HTTPError
	var sc statusCoder
	switch {
	case errors.As(err, &he):
		return he
	case errors.Is(err, ErrNotFound):
		return &HTTPError{http.StatusNotFound, err.Error()}
	case errors.As(err, &ue):
		return &HTTPError{ue.Status, ue.Msg}
	case errors.As(err, &sc):
		return &HTTPError{sc.HTTPStatus(), err.Error()}
	case errors.Is(err, context.Canceled):
		return &HTTPError{499, "client closed the request"}
	case errors.Is(err, context.DeadlineExceeded):
		return &HTTPError{http.StatusGatewayTimeout, "timed out"}
	}
	return &HTTPError{http.StatusBadGateway, err.Error()}
}

// IsNotFound reports whether err says "not found": the upstream's 404, or
// a 404 of this proxy's own (a name not in the mirrored metadata).
func IsNotFound(err error) bool {
	var he *HTTPError
	return errors.Is(err, ErrNotFound) || errors.As(err, &he) && he.Code == http.StatusNotFound
}

// RetryAfterOf is the Retry-After an error's answer carries ("" : none).
func RetryAfterOf(err error) string {
	var ue *UpstreamError
	if errors.As(err, &ue) {
		return ue.RetryAfter
	}
	return ""
}

// RedirectTo sends the client to the canonical URL of what it asked for.
type RedirectTo struct{ URL string }

func (r *RedirectTo) Error() string { return "moved to " + r.URL }

// Aborted is what a handler panics with to cut a response that has
// started (a file that failed verification mid-transfer): the server
// records Reason and cuts the connection (http.ErrAbortHandler), so the
// client sees a truncated transfer, never a clean one.
type Aborted struct {
	Reason string
	Err    error
}

// QuoteName is a client-supplied name as error messages echo it: quoted,
// at most 100 bytes.
func QuoteName(s string) string { return fmt.Sprintf("%q", Truncate(s, 100)) }
