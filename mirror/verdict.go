package mirror

import (
	"net/http"

	"github.com/mirror-proxy/mirror-proxy/audit"
	"github.com/mirror-proxy/mirror-proxy/httpx"
	"github.com/mirror-proxy/mirror-proxy/policy"
)

// FileVerdict is where a request for one of the mirror's files meets the
// policies' verdict on it (why and v from policy.Judge): a refusal is a
// 403 whose message is why. What an advisories policy refuses is counted
// and logged once per request, with the package, version, advisory ids
// and the client's token name; every refusal is an audit event; in report mode the file is served, its
// response names the advisories in X-Mirror-Advisory, and it is logged.
func (e *Env) FileVerdict(w http.ResponseWriter, r *http.Request, why string, v policy.Verdict) error {
	if a := v.Advice; a != nil {
		token := ""
		if e.TokenName != nil {
			token = e.TokenName(r)
		}
		attrs := []any{"mirror", e.Mirror.Name, "package", a.Name, "version", a.Version, "advisories", a.IDs,
			"reason", a.Reason, "token", token, "path", r.URL.Path}
		if a.Report {
			w.Header().Set("X-Mirror-Advisory", a.IDs)
			e.Log.Warn("advisory (report mode: served)", attrs...)
		} else {
			if e.AdvisoryBlocked != nil {
				e.AdvisoryBlocked(a.Reason)
			}
			e.Log.Warn("advisory: refused", attrs...)
		}
	}
	if why != "" {
		if e.Audit != nil {
			reason := v.Policy
			if reason == "" {
				reason = "policy"
			}
			e.Audit(w, r, audit.Event{Action: audit.Refuse, Mirror: e.Mirror.Name, Package: v.Name, Version: v.Version,
				Outcome: audit.Denied, Status: http.StatusForbidden, Reason: reason})
		}
		return httpx.NewError(http.StatusForbidden, why)
	}
	return nil
}
