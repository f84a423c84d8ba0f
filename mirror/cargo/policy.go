package cargo

import (
	"bytes"
	"net/http"
	"time"

	"github.com/mirror-proxy/mirror-proxy/fetch"
	"github.com/mirror-proxy/mirror-proxy/httpx"
	"github.com/mirror-proxy/mirror-proxy/policy"
)

// Policies: a version's publish time is its index line's pubtime (crates
// published since 2025 have one; older ones are judged by
// cooldownUnknown). Under a cooldown, deny rules (crate@1.2.3, or a name
// pattern) or a dated snapshot, the index file leaves out the lines of the
// versions they hide, so cargo resolves the newest one let through; the
// .crate of a hidden version is a 403 with the reason.

// filters reports whether what r asks of name is judged.
func (cm *cargoMirror) filters(r *http.Request, name string) bool {
	_, snap := policy.Snapshot(r)
	return snap || cm.m.Cooldown.Active(name) || cm.m.Rules.Filters(name)
}

// judge says why a version is not served ("" : it is).
func (cm *cargoMirror) judge(r *http.Request, v Version, now time.Time) (string, policy.Verdict) {
	return policy.Judge(r, cm.m.Cooldown, cm.m.Rules, policy.Judged{Name: v.Name, What: v.Name + " " + v.Vers,
		Published: v.Published(), Versions: []string{v.Vers}}, now)
}

// filteredIndex serves an index file without the lines the policies hide.
func (cm *cargoMirror) filteredIndex(w http.ResponseWriter, r *http.Request, name string, res fetch.MetaResult) error {
	key := fetch.DerivedKey{ID: res.Entry.ID(), Day: policy.SnapshotDay(r)}
	d, err := cm.derived.Doc(key, time.Now(), func() (*fetch.Doc, policy.Window, error) {
		var win policy.Window
		ix, err := fetch.Parsed(cm.env.Core, res.Entry, ParseIndex)
		if err != nil {
			return nil, win, &httpx.UpstreamError{Status: http.StatusBadGateway, Msg: "stored index of " + name + ": " + err.Error()}
		}
		now := time.Now()
		var b bytes.Buffer
		for i, v := range ix.Versions {
			why, verdict := cm.judge(r, v, now)
			win.Add(verdict)
			if why == "" {
				b.Write(ix.Lines[i])
				b.WriteByte('\n')
			}
		}
		return fetch.NewDoc(b.Bytes(), "i"), win, nil
	})
	if err != nil {
		return err
	}
	return fetch.ServeDoc(w, r, d, hvText, res)
}

// heldBack refuses the .crate of a version a policy hides; it fails
// closed: a version the index no longer lists is judged with no publish
// time, and nothing is served while the index cannot be read.
func (cm *cargoMirror) heldBack(w http.ResponseWriter, r *http.Request, name, vers string) error {
	_, ix, err := cm.parsedIndex(r.Context(), name)
	if err != nil {
		return err
	}
	v, ok := ix.Find(vers)
	if !ok {
		v = Version{Name: name, Vers: vers}
	}
	why, verdict := cm.judge(r, v, time.Now())
	return cm.env.FileVerdict(w, r, why, verdict)
}
