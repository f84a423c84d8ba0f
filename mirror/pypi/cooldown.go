package pypi

import (
	"context"
	"net/http"
	"time"

	"github.com/mirror-proxy/mirror-proxy/fetch"
	"github.com/mirror-proxy/mirror-proxy/policy"
)

// Cooldown: files uploaded (PEP 700 upload-time) less than the mirror's
// cooldown ago are left out of project pages, and their downloads are
// refused with a 403 that names the policy and the date. The page is
// filtered once per stored version and kept until a held-back file comes
// of age.

// uploaded is a file's upload time (zero when the index gives none).
func uploaded(f *File) time.Time {
	t, err := time.Parse(time.RFC3339Nano, f.UploadTime)
	if err != nil {
		return time.Time{}
	}
	return t
}

// cooled is page as the cooldown lets clients see it.
func (pm *pypiMirror) cooled(res fetch.MetaResult, page *rendered, name string) *rendered {
	return pm.derived.Get(res.Entry.ID(), time.Now(), func() (any, policy.Window) {
		now := time.Now()
		var w policy.Window
		p := *page.project
		p.Files = nil
		for i := range page.project.Files {
			f := &page.project.Files[i]
			v := pm.m.Cooldown.Judge(uploaded(f), now)
			w.Add(v)
			if !v.Hidden {
				p.Files = append(p.Files, *f)
			}
		}
		return &rendered{json: fetch.NewDoc(p.RenderJSON(name), "j"), html: fetch.NewDoc(p.RenderHTML(name), "h"), project: &p}, w
	}).(*rendered)
}

// heldBack refuses the download of a file the cooldown hides.
func (pm *pypiMirror) heldBack(ctx context.Context, project, key, filename string) error {
	_, page, err := pm.projectPage(ctx, project)
	if err != nil {
		return nil // the download path reports what is wrong
	}
	f, ok := page.project.FindFile(key, filename)
	if !ok {
		return nil
	}
	if v := pm.m.Cooldown.Judge(uploaded(f), time.Now()); v.Hidden {
		return fetch.NewError(http.StatusForbidden, pm.m.Cooldown.Reason(filename, v))
	}
	return nil
}
