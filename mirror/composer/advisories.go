package composer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/mirror-proxy/mirror-proxy/fetch"
	"github.com/mirror-proxy/mirror-proxy/httpx"
	"github.com/mirror-proxy/mirror-proxy/osv"
)

// advisoryPackages are the valid package names of an advisory query, in
// the order sent: packages[] values, then packages[N] by N.
func advisoryPackages(form url.Values) []string {
	var out []string
	for _, p := range form["packages[]"] {
		if ValidName(strings.ToLower(p)) {
			out = append(out, p)
		}
	}
	type indexed struct {
		i    int
		name string
	}
	var byIndex []indexed
	for k, vs := range form {
		n, ok := strings.CutPrefix(k, "packages[")
		if !ok || !strings.HasSuffix(n, "]") || len(vs) != 1 {
			continue
		}
		i, err := strconv.Atoi(strings.TrimSuffix(n, "]"))
		if err != nil || i < 0 || !ValidName(strings.ToLower(vs[0])) {
			continue
		}
		byIndex = append(byIndex, indexed{i, vs[0]})
	}
	sort.Slice(byIndex, func(a, b int) bool { return byIndex[a].i < byIndex[b].i })
	for _, x := range byIndex {
		out = append(out, x.name)
	}
	return out
}

// advisories answers Composer's security advisory query (what composer
// audit asks the root's api-url). Composer 2.5 and later send PHP's
// http_build_query form (packages[0]=a/b&packages[1]=c/d); older clients
// and other tools send packages[]=a/b. Both are read. The upstream's API
// gets Composer's own form, with updatedSince when it was sent; a mirror
// with an advisories policy adds what its OSV data knows of each name and
// answers from that alone when the upstream does not answer, so composer
// audit works with the upstream down and in an air-gapped site.
func (cm *composerMirror) advisories(w http.ResponseWriter, r *http.Request) error {
	local, _ := cm.m.Rules.Advisor.(auditor)
	if cm.m.URL == "" && local == nil {
		return httpx.NewError(http.StatusNotFound, "a repository without upstream has no security advisories API")
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		return httpx.NewError(http.StatusBadRequest, "bad form: "+err.Error())
	}
	names := advisoryPackages(r.PostForm)
	var answer map[string][]json.RawMessage
	var upErr error
	if cm.m.URL != "" {
		answer, upErr = cm.advisoriesUpstream(r, names)
	}
	if local == nil {
		if upErr != nil {
			return upErr
		}
	} else if upErr != nil {
		cm.env.Log.Warn("composer audit: the upstream did not answer; answering from the mirror's advisories", "mirror", cm.m.Name, "err", upErr)
	}
	if answer == nil {
		answer = map[string][]json.RawMessage{}
	}
	if local != nil {
		repo := httpx.BaseURL(r, cm.env.PublicURL, cm.m.Name)
		for _, name := range names {
			name = strings.ToLower(name)
			for _, f := range local.Audit(name, nil) {
				if mentions(answer[name], f.Advisory) {
					continue
				}
				answer[name] = append(answer[name], advisoryEntry(name, repo, f))
			}
		}
	}
	return httpx.WriteJSON(w, http.StatusOK, map[string]any{"advisories": answer})
}

// auditor is an advisories policy that answers audits (osv.Policy).
type auditor interface {
	Audit(name string, versions []string) []osv.Finding
}

// composerRange is Composer's constraint syntax.
var composerRange = osv.RangeSyntax{And: ",", Or: "|"}

// advisoryEntry is f in the API's shape (Composer's SecurityAdvisory:
// every field it requires of a full advisory).
func advisoryEntry(name, repo string, f osv.Finding) json.RawMessage {
	cve := any(nil)
	for _, a := range f.Aliases {
		if strings.HasPrefix(a, "CVE-") {
			cve = a
			break
		}
	}
	severity := f.Severity
	if f.Malware {
		severity = "critical"
	}
	title := f.Summary
	if title == "" {
		title = f.ID
	}
	reported := f.Published
	if reported == "" {
		reported = "1970-01-01T00:00:00Z" // required; OSV records nearly always have it
	}
	b, _ := json.Marshal(map[string]any{
		"advisoryId": f.ID, "packageName": name, "remoteId": f.ID, "title": title, "link": f.Link(), "cve": cve,
		"affectedVersions": f.Range(composerRange), "source": "OSV", "reportedAt": reported,
		"composerRepository": repo, "severity": severity,
		"sources": []map[string]string{{"name": "OSV", "remoteId": f.ID}},
	})
	return b
}

// mentions reports whether the upstream's entries already name the
// advisory: its id or an alias is one of their values (advisoryId,
// remoteId, cve, a source's remoteId).
func mentions(entries []json.RawMessage, a *osv.Advisory) bool {
	for _, e := range entries {
		for _, id := range append([]string{a.ID}, a.Aliases...) {
			if id != "" && bytes.Contains(e, []byte(strconv.Quote(id))) {
				return true
			}
		}
	}
	return false
}

// advisoriesUpstream asks the upstream's advisories API about names.
func (cm *composerMirror) advisoriesUpstream(r *http.Request, names []string) (map[string][]json.RawMessage, error) {
	ctx := r.Context()
	_, root, err := cm.upstreamRoot(ctx)
	if err != nil {
		return nil, err
	}
	target := root.advURL
	if target == "" {
		return nil, httpx.NewError(http.StatusNotFound, "the upstream publishes no security advisories API")
	}
	form := url.Values{}
	for i, p := range names {
		form.Set("packages["+strconv.Itoa(i)+"]", p)
	}
	if since := r.PostForm.Get("updatedSince"); since != "" {
		if _, err := strconv.ParseInt(since, 10, 64); err == nil {
			form.Set("updatedSince", since)
		}
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := cm.client.Do(req)
	if err != nil {
		return nil, fetch.TransportError(target, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fetch.StatusError(target, resp)
	}
	body, release, err := cm.env.Core.ReadBody(ctx, resp)
	defer release()
	if err != nil {
		return nil, fetch.TransportError(target, err)
	}
	var out struct {
		Advisories map[string][]json.RawMessage `json:"advisories"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, &httpx.UpstreamError{Status: http.StatusBadGateway, Msg: fmt.Sprintf("upstream %s: advisories answer is not JSON: %v", target, err)}
	}
	return out.Advisories, nil
}
