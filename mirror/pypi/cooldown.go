package pypi

import (
	"fmt"
	"net/http"
	"time"

	"github.com/mirror-proxy/mirror-proxy/fetch"
	"github.com/mirror-proxy/mirror-proxy/httpx"
	"github.com/mirror-proxy/mirror-proxy/policy"
)

// Policies: files uploaded (PEP 700 upload-time) less than the mirror's
// cooldown ago, or after a snapshot's date, are left out of project
// pages. Files of denied versions stay listed, yanked with the deny rule
// as the reason (PEP 592): pip and uv skip them unless a requirement pins
// that exact version, and then they print the reason before the download
// fails. Downloads of all of them are refused with a 403 that names the
// policy (and the date, for the cooldown). A project outside the allow
// list, or denied whole, is a 404 that says so. The page is filtered once
// per stored version and kept until a held-back file comes of age.

// filters reports whether the page of project is filtered for r.
func (pm *pypiMirror) filters(r *http.Request, project string) bool {
	_, snap := policy.Snapshot(r)
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

// judge says why a file is not served ("" : it is), and the policies'
// verdict (see policy.Judge).
func (pm *pypiMirror) judge(r *http.Request, project string, f *File, now time.Time) (string, policy.Verdict) {
	return policy.Judge(r, pm.m.Cooldown, pm.rules, policy.Judged{Name: project, What: f.Filename,
		Published: uploaded(f), Versions: []string{fileVersion(f.Filename)}}, now)
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
	key := fetch.DerivedKey{ID: res.Entry.ID(), Day: policy.SnapshotDay(r)}
	if d, ok := pm.derived.Lookup(key, time.Now()); ok {
		return d.(*rendered)
	}
	return pm.derived.Get(key, time.Now(), func() (any, policy.Window) {
		now := time.Now()
		var w policy.Window
		p := *page.project
		p.Files = nil
		for i := range page.project.Files {
			f := &page.project.Files[i]
			why, v := pm.judge(r, name, f, now)
			w.Add(v)
			switch {
			case why == "":
				p.Files = append(p.Files, *f)
			case v.Denied:
				denied := *f
				denied.Yanked = why
				p.Files = append(p.Files, denied)
			}
		}
		return &rendered{json: fetch.NewDoc(p.RenderJSON(name), "j"), html: fetch.NewDoc(p.RenderHTML(name), "h"), project: &p}, w
	}).(*rendered)
}

// heldBack refuses the download of a file a policy hides. The core
// metadata of a denied file is served: pip reads it while resolving, and
// only once resolution is done does it print the yanked reason (the deny
// rule) before it asks for the file itself, which is refused.
//
// It fails closed: a file the page no longer lists (the upstream took it
// down) is judged by the version its name gives, with no upload time
// (cooldownUnknown decides); every file is refused while the page cannot
// be read, even one in storage.
func (pm *pypiMirror) heldBack(w http.ResponseWriter, r *http.Request, project, key, filename string, isMeta bool) error {
	_, page, err := pm.projectPage(r.Context(), project)
	if err != nil {
		return err
	}
	f, ok := page.project.FindFile(key, filename)
	if !ok {
		if fileVersion(filename) == "" {
			return httpx.NewError(http.StatusForbidden, fmt.Sprintf("%s is not a file of %s in the mirrored index, so the mirror's policies cannot judge it", httpx.QuoteName(filename), project))
		}
		f = &File{Filename: filename}
	}
	why, v := pm.judge(r, project, f, time.Now())
	if isMeta && v.Denied {
		return nil // read while resolving; the file itself is refused
	}
	if isMeta {
		v.Advice = nil // the file's own request logs and marks it
	}
	return pm.env.FileVerdict(w, r, why, v)
}
