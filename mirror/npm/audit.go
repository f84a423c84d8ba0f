package npm

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"hash/fnv"
	"io"
	"net/http"
	"strings"

	"github.com/mirror-proxy/mirror-proxy/httpx"
	"github.com/mirror-proxy/mirror-proxy/osv"
)

// auditor is an advisories policy that answers audits (osv.Policy).
type auditor interface {
	Audit(name string, versions []string) []osv.Finding
}

// auditEntry is one advisory in npm's bulk audit answer.
type auditEntry struct {
	ID                 uint32   `json:"id"`
	URL                string   `json:"url"`
	Title              string   `json:"title"`
	Severity           string   `json:"severity"`
	VulnerableVersions string   `json:"vulnerable_versions"`
	CWE                []string `json:"cwe"`
	CVSS               struct {
		Score        float64 `json:"score"`
		VectorString *string `json:"vectorString"`
	} `json:"cvss"`
}

// auditLocally answers npm audit's bulk query from the mirror's advisory
// data, merged with the upstream's answer when it gives one: npm audit
// works with the upstream down, and in an air-gapped site.
func (nm *npmMirror) auditLocally(w http.ResponseWriter, r *http.Request, a auditor) error {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAuditBody))
	if err != nil {
		return httpx.NewError(http.StatusRequestEntityTooLarge, "audit request larger than 1 MiB")
	}
	plain := raw
	if strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return httpx.BadRequest("audit request: %v", err)
		}
		if plain, err = io.ReadAll(io.LimitReader(zr, 8*maxAuditBody+1)); err != nil || len(plain) > 8*maxAuditBody {
			return httpx.BadRequest("audit request: not gzip, or larger than 8 MiB decompressed")
		}
	}
	var query map[string][]string
	if err := json.Unmarshal(plain, &query); err != nil {
		return httpx.BadRequest("audit request: not a JSON object of package versions: %v", err)
	}
	answer := map[string][]json.RawMessage{}
	if nm.m.URL != "" {
		if up, err := nm.auditUpstream(r, raw); err == nil {
			answer = up
		} else {
			nm.env.Log.Warn("npm audit: the upstream did not answer; answering from the mirror's advisories", "mirror", nm.m.Name, "err", err)
		}
	}
	for name, versions := range query {
		for _, f := range a.Audit(name, versions) {
			e := auditEntry{ID: idNumber(f.ID), URL: f.Link(), Title: f.Summary, Severity: f.Severity,
				VulnerableVersions: f.Range(osv.NPMRange), CWE: []string{}}
			if f.Malware {
				e.Severity = "critical"
			}
			if e.Severity == "" {
				e.Severity = "moderate"
			} else if e.Severity == "medium" {
				e.Severity = "moderate" // npm's name
			}
			if e.Title == "" {
				e.Title = f.ID
			}
			b, _ := json.Marshal(e)
			if !mentions(answer[name], f.Advisory) {
				answer[name] = append(answer[name], b)
			}
		}
	}
	return httpx.WriteJSON(w, http.StatusOK, answer)
}

// auditUpstream asks the upstream the same bulk query.
func (nm *npmMirror) auditUpstream(r *http.Request, body []byte) (map[string][]json.RawMessage, error) {
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, nm.auditTarget(r), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for _, h := range []string{"Content-Type", "Content-Encoding", "Accept", "npm-command"} {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	resp, err := nm.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, errors.New(resp.Status)
	}
	b, release, err := nm.env.Core.ReadBody(r.Context(), resp)
	defer release()
	if err != nil {
		return nil, err
	}
	var out map[string][]json.RawMessage
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// mentions reports whether the upstream's entries already name the
// advisory (its id or an alias in their URL).
func mentions(entries []json.RawMessage, a *osv.Advisory) bool {
	for _, e := range entries {
		var x struct{ URL string }
		_ = json.Unmarshal(e, &x)
		for _, id := range append([]string{a.ID}, a.Aliases...) {
			if id != "" && strings.Contains(x.URL, id) {
				return true
			}
		}
	}
	return false
}

// idNumber is a stable number for an advisory id (npm's answer has
// numeric ids).
func idNumber(id string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(id))
	return h.Sum32() | 1<<31 // far from the registry's own numbers
}
