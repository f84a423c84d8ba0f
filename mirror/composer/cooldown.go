package composer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/mirror-proxy/mirror-proxy/fetch"
	"github.com/mirror-proxy/mirror-proxy/httpx"
	"github.com/mirror-proxy/mirror-proxy/policy"
)

// Policies: versions released (their "time") less than the mirror's
// cooldown ago or after a snapshot's date, and denied versions, are left
// out of p2 files, so that Composer resolves the newest version it may
// have; their dists answer 403 with the reason (and the date, for the
// cooldown). A p2 file that leaves out denied versions says so in its
// "warning", which Composer prints whenever it downloads the file: a
// "composer require vendor/pkg:<denied version>" then fails with the deny
// rule in its output, not only "could not find". A package outside the
// allow list, or denied whole, is a 404 that says so. A p2 file is
// filtered once per stored version and kept until a held-back version
// comes of age.

// filters reports whether the p2 files of name are filtered for r.
func (cm *composerMirror) filters(r *http.Request, name string) bool {
	_, snap := policy.Snapshot(r)
	return snap || cm.m.Cooldown.Active(name) || cm.m.Rules.Filters(name)
}

// judge says why a version is not served ("" : it is), and the
// policies' verdict (see policy.Judge).
func (cm *composerMirror) judge(r *http.Request, name, pretty, normalized, at string, now time.Time) (string, policy.Verdict) {
	return policy.Judge(r, cm.m.Cooldown, cm.m.Rules, policy.Judged{Name: name, What: name + " " + pretty,
		Published: released(at), Versions: []string{pretty, normalized, denyForm(normalized)}}, now)
}

// refuse answers a policy refusal so that Composer shows the reason: it
// prints the "warning" of a JSON error body (only when the Content-Type is
// exactly application/json), where it would otherwise say only "404" or
// "403".
func refuse(w http.ResponseWriter, code int, why string) error {
	return httpx.WriteJSON(w, code, map[string]string{"error": why, "warning": why})
}

// maxWarned is how many denied versions a p2 file's warning names.
const maxWarned = 5

// denyForm is a normalized version as a deny rule may write it ("1.2.3"
// for 1.2.3.0).
func denyForm(normalized string) string {
	return strings.TrimSuffix(normalized, ".0")
}

func released(s string) time.Time {
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04:05-0700", "2006-01-02 15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t
		}
	}
	return time.Time{}
}

// cooledP2 is the p2 file of res as the cooldown lets clients see it:
// unminified (Composer 2 reads both), every other key kept.
func (cm *composerMirror) cooledP2(r *http.Request, res fetch.MetaResult, name string) (*fetch.Doc, error) {
	key := fetch.DerivedKey{ID: res.Entry.ID(), Day: policy.SnapshotDay(r)}
	d, err := cm.derived.Doc(key, time.Now(), func() (*fetch.Doc, policy.Window, error) {
		var w policy.Window
		v, err := fetch.Parsed(cm.env.Core, res.Entry, func(b []byte) ([]Version, error) { return Expand(b, name) })
		if err != nil {
			return nil, w, err
		}
		body, err := res.Entry.Body()
		if err != nil {
			return nil, w, err
		}
		var doc map[string]json.RawMessage
		if err := json.Unmarshal(body, &doc); err != nil {
			return nil, w, err
		}
		now := time.Now()
		kept := []Version{}
		var denied []string
		for _, ver := range v {
			why, verdict := cm.judge(r, name, str(ver, "version"), str(ver, "version_normalized"), str(ver, "time"), now)
			w.Add(verdict)
			if why == "" {
				kept = append(kept, ver)
			} else if verdict.Denied {
				denied = append(denied, why)
			}
		}
		if len(denied) > 0 {
			if len(denied) > maxWarned {
				denied = append(denied[:maxWarned], fmt.Sprintf("and %d more denied versions", len(denied)-maxWarned))
			}
			msg := "left out by this mirror: " + strings.Join(denied, "; ")
			var upstream string
			if json.Unmarshal(doc["warning"], &upstream) == nil && upstream != "" {
				msg = upstream + " / " + msg
			}
			doc["warning"], _ = json.Marshal(msg)
		}
		delete(doc, "minified")
		doc["packages"], _ = json.Marshal(map[string][]Version{name: kept})
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(doc)
		return fetch.NewDoc(bytes.TrimRight(buf.Bytes(), "\n"), "c"), w, nil
	})
	if err != nil {
		return nil, &httpx.UpstreamError{Status: http.StatusBadGateway, Msg: fmt.Sprintf("metadata of %s: %v", name, err)}
	}
	return d, nil
}

// heldBack refuses the dist of a version a policy hides. It fails
// closed: a dist the p2 files no longer list (the upstream took the
// version down) is judged by the version its URL gives, with no release
// time (cooldownUnknown decides); every dist is refused while neither p2
// file can be read, even one in storage.
func (cm *composerMirror) heldBack(w http.ResponseWriter, r *http.Request, name, version, ref string) error {
	ctx := r.Context()
	var versions []Version
	var lastErr error
	read := 0
	for _, dev := range []bool{false, true} {
		res, err := cm.p2Meta(ctx, name, dev)
		if err != nil {
			if !httpx.IsNotFound(err) {
				lastErr = err
			}
			continue
		}
		read++
		v, err := fetch.Parsed(cm.env.Core, res.Entry, func(b []byte) ([]Version, error) { return Expand(b, name) })
		if err != nil {
			continue
		}
		versions = append(versions, v...)
		if d, ok := FindDist(versions, version, ref); ok {
			why, v := cm.judge(r, name, d.Pretty, d.Version, d.Time, time.Now())
			return cm.env.FileVerdict(w, r, why, v)
		}
	}
	if read == 0 && lastErr != nil {
		return lastErr
	}
	normalized, err := NormalizeVersion(version)
	if err != nil {
		normalized = version
	}
	why, v := cm.judge(r, name, version, normalized, "", time.Now())
	return cm.env.FileVerdict(w, r, why, v)
}
