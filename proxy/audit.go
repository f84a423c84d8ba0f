package proxy

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/mirror-proxy/mirror-proxy/audit"
	"github.com/mirror-proxy/mirror-proxy/httpx"
)

// auditEvent completes an event of request r with what the server knows:
// the client's address (X-Forwarded-For from a trusted proxy only), the
// name of the token it carries (never the token), its method, path and
// request id.
func (s *Server) auditEvent(w http.ResponseWriter, r *http.Request, e audit.Event) {
	switch e.Action {
	case audit.Publish, audit.Delete, audit.Yank, audit.Unyank:
		s.publishes(e.Mirror, e.Action, e.Outcome)
	case audit.Refuse:
		s.refusals(e.Mirror, e.Reason)
	case audit.Auth:
		s.refusals(e.Mirror, "auth")
	}
	if s.opts.Audit == nil {
		return
	}
	if len(s.opts.Tokens) > 0 {
		e.Token = s.tokenName(r)
	}
	e.Client = s.e.IPExtractor(r)
	e.Method, e.Path = r.Method, r.URL.Path
	e.RequestID = w.Header().Get(echo.HeaderXRequestID)
	s.opts.Audit.Record(e)
}

// audited runs a write route's handler h with a Note for it to fill
// (audit.Noted), then records the request's one event: what it did (or,
// when it said nothing, "write"), and how it ended.
func (s *Server) audited(c echo.Context, mirrorName string, h func(*http.Request) error) error {
	r := c.Request()
	ctx, note := audit.WithNote(r.Context())
	r = r.WithContext(ctx)
	c.SetRequest(r)
	err := h(r)
	status := c.Response().Status
	reason := ""
	if err != nil {
		status, reason = errorStatus(err)
		reason = httpx.Truncate(reason, 300)
	}
	action := note.Action
	if action == "" {
		action = audit.Write
	}
	s.auditEvent(c.Response(), r, audit.Event{Action: action, Mirror: mirrorName, Package: note.Package,
		Version: note.Version, Outcome: audit.OutcomeOf(status), Status: status, Reason: reason})
	return err
}

// auditAuth records a request that authorization refused (err, from the
// authorizer): a failed authentication, or a token without the scope or
// the mirror.
func (s *Server) auditAuth(c echo.Context, mirrorName string, write bool, err error) {
	status, reason := errorStatus(err)
	reason = httpx.Truncate(reason, 300)
	if status == http.StatusMethodNotAllowed {
		return // a write under a snapshot's URL: not an authentication
	}
	// A missing or unknown token (401), or a valid one without the scope
	// or the mirror (403, named with its token).
	action := audit.Auth
	if len(s.opts.Tokens) == 0 {
		action = audit.Write // writes are refused: no tokens are configured
	}
	s.auditEvent(c.Response(), c.Request(), audit.Event{Action: action, Mirror: mirrorName,
		Outcome: audit.Denied, Status: status, Reason: reason})
}

// errorStatus is the status and message an error becomes: echo's own
// (no route, 405) or httpx.ErrorOf's. handleError answers with them; the
// audit trail records them.
func errorStatus(err error) (int, string) {
	if ee := (*echo.HTTPError)(nil); errors.As(err, &ee) {
		return ee.Code, fmt.Sprint(ee.Message)
	}
	he := httpx.ErrorOf(err)
	return he.Code, he.Msg
}
