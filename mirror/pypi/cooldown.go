package pypi

import (
	"net/http"
	"time"

	"github.com/mirror-proxy/mirror-proxy/fetch"
	"github.com/mirror-proxy/mirror-proxy/policy"
)

// Policies: files uploaded (PEP 700 upload-time) less than the mirror's
// cooldown ago, and files of denied versions, are left out of project
// pages, and their downloads are refused with a 403 that names the policy
// (and the date, for the cooldown). A project outside the allow list, or
// denied whole, is a 404 that says so. The page is filtered once per
// stored version and kept until a held-back file comes of age.

// filters reports whether the page of project is filtered for r.
func (pm *pypiMirror) filters(r *http.Request, project string) bool {
	_, snap := fetch.Snapshot(r)
	return snap || pm.m.Cooldown.Active(project) || pm.rules.Filters(project)
}

// fileVersion is the version a file's name gives.
func fileVersion(filename string) string {
	df, err := ParseDistFilename(filename)
	if err != nil {
		return ""
	}
	return df.Version
}

// judge says why a file is not served ("" : it is), and the cooldown's
// verdict.
func (pm *pypiMirror) judge(r *http.Request, project string, f *File, now time.Time) (string, policy.Verdict) {
	if why := pm.rules.DenyVersion(project, fileVersion(f.Filename)); why != "" {
		return why, policy.Verdict{Hidden: true}
	}
	if cutoff, ok := fetch.Snapshot(r); ok {
		if why, v := policy.AsOf(uploaded(f), cutoff, pm.m.Cooldown.AllowUnknown); v.Hidden {
			return f.Filename + " is not in this snapshot: " + why, v
		}
	}
	if !pm.m.Cooldown.Active(project) {
		return "", policy.Verdict{}
	}
	v := pm.m.Cooldown.Judge(uploaded(f), now)
	if v.Hidden {
		return pm.m.Cooldown.Reason(f.Filename, v), v
	}
	return "", v
}

// uploaded is a file's upload time (zero when the index gives none).
func uploaded(f *File) time.Time {
	t, err := time.Parse(time.RFC3339Nano, f.UploadTime)
	if err != nil {
		return time.Time{}
	}
	return t
}

// cooled is page as the cooldown lets clients see it.
func (pm *pypiMirror) cooled(r *http.Request, res fetch.MetaResult, page *rendered, name string) *rendered {
	key := struct {
		id  uint64
		day string
	}{res.Entry.ID(), fetch.SnapshotDay(r)}
	return pm.derived.Get(key, time.Now(), func() (any, policy.Window) {
		now := time.Now()
		var w policy.Window
		p := *page.project
		p.Files = nil
		for i := range page.project.Files {
			f := &page.project.Files[i]
			why, v := pm.judge(r, name, f, now)
			w.Add(v)
			if why == "" {
				p.Files = append(p.Files, *f)
			}
		}
		return &rendered{json: fetch.NewDoc(p.RenderJSON(name), "j"), html: fetch.NewDoc(p.RenderHTML(name), "h"), project: &p}, w
	}).(*rendered)
}

// heldBack refuses the download of a file the cooldown hides.
func (pm *pypiMirror) heldBack(r *http.Request, project, key, filename string) error {
	_, page, err := pm.projectPage(r.Context(), project)
	if err != nil {
		return nil // the download path reports what is wrong
	}
	f, ok := page.project.FindFile(key, filename)
	if !ok {
		return nil
	}
	if why, _ := pm.judge(r, project, f, time.Now()); why != "" {
		return fetch.NewError(http.StatusForbidden, why)
	}
	return nil
}
