package composer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mirror-proxy/mirror-proxy/audit"
	"github.com/mirror-proxy/mirror-proxy/fetch"
	"github.com/mirror-proxy/mirror-proxy/hosted"
	"github.com/mirror-proxy/mirror-proxy/httpx"
	"github.com/mirror-proxy/mirror-proxy/mirror"
	"github.com/mirror-proxy/mirror-proxy/policy"
)

// Composer publishing, as Packeton and Nexus accept it (and the
// composer-push plugin sends it): PUT or POST
// /<mirror>/packages/upload/<vendor>/<name>/<version> (also under
// /<mirror>/api/packages/upload/...), multipart with the zip in "package"
// and optional src-type, src-url and src-ref. DELETE of the same URL
// removes the version from the index; its zip stays in storage, so that
// lock files that name it keep installing, and the version is never
// published again (a tombstone). Publishing the same zip again while the
// version is live succeeds (a retry); another zip is a 409.

// registerHosted adds the publish routes of a hosted mirror.
func (cm *composerMirror) registerHosted(rt mirror.Router) {
	for _, base := range []string{"/packages/upload", "/api/packages/upload"} {
		path := base + "/{vendor}/{package}/{version}"
		rt.Write(http.MethodPut, path, cm.upload)
		rt.Write(http.MethodPost, path, cm.upload)
		rt.Write(http.MethodDelete, path, cm.deleteVersion)
	}
	rt.Read("/packages/list.json", cm.list)
}

// errVersionExists: a version is published already with another zip;
// errVersionDeleted: it was published and deleted (never reused).
var (
	errVersionExists  = errors.New("version exists")
	errVersionDeleted = errors.New("version deleted")
)

func (cm *composerMirror) distPath(name, sha1 string) string {
	return "dist/" + name + "/" + sha1 + ".zip"
}

func (cm *composerMirror) upload(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("vendor") + "/" + r.PathValue("package")
	if !ValidName(name) {
		return httpx.BadRequest("%s is not a valid lowercase vendor/package name", httpx.QuoteName(name))
	}
	version := r.PathValue("version")
	normalized, err := NormalizeVersion(version)
	if err != nil {
		return httpx.BadRequest("%v", err)
	}
	u, err := cm.env.Uploads.Form(w, r, "package")
	if err != nil {
		return err
	}
	defer u.Close()
	cj, err := ComposerJSON(u.File, u.File.Size)
	if err != nil {
		return httpx.BadRequest("%v", err)
	}
	audit.Noted(r.Context(), audit.Publish, name, version)
	if cjName, _ := cj["name"].(string); strings.ToLower(cjName) != name {
		return httpx.BadRequest("json names the package %s, the URL %s: they must be the same", httpx.QuoteName(cjName), httpx.QuoteName(name))
	}
	ctx := r.Context()
	// Refused before anything is stored when the version is known already
	// (unless this is the same zip again: a retry).
	if x, err := cm.repo.Index(ctx, name); err == nil {
		if idx, err := ParseHostedIndex(x.Body, name); err == nil {
			if _, err := idx.Republish(normalized, u.File.SHA1); err != nil {
				return cm.exists(name, version, err)
			}
		}
	}
	var source map[string]any
	if t, u2, ref := u.Fields["src-type"], u.Fields["src-url"], u.Fields["src-ref"]; t != "" && u2 != "" && ref != "" {
		source = map[string]any{"type": t, "url": u2, "reference": ref}
	}
	if err := cm.repo.PutSpooled(ctx, cm.distPath(name, u.File.SHA1), u.File, "application/zip"); err != nil {
		return err
	}
	distURL := "/" + cm.m.Name + "/zipball/" + name + "/" + MirrorVersion(normalized) + "/ref" + u.File.SHA1 + ".zip"
	entry := HostedVersion(cj, name, version, normalized, distURL, u.File.SHA1,
		time.Now().UTC().Format(time.RFC3339), source)
	err = cm.repo.Update(ctx, name, func(old []byte) ([]byte, error) {
		idx, err := ParseHostedIndex(old, name)
		if err != nil {
			return nil, err
		}
		if same, err := idx.Republish(normalized, u.File.SHA1); same || err != nil {
			return old, err // same: an identical retry, nothing to write
		}
		idx.Versions[normalized] = entry
		return idx.Marshal(), nil
	})
	if errors.Is(err, errVersionExists) || errors.Is(err, errVersionDeleted) {
		return cm.exists(name, version, err)
	}
	if err != nil {
		return err
	}
	cm.env.Log.Info("package published", "mirror", cm.m.Name, "package", name, "version", normalized, "sha1", u.File.SHA1, "bytes", u.File.Size)
	return httpx.WriteJSON(w, http.StatusCreated, map[string]string{"name": name, "version": version, "version_normalized": normalized, "shasum": u.File.SHA1})
}

func (cm *composerMirror) exists(name, version string, why error) error {
	if errors.Is(why, errVersionDeleted) {
		return httpx.NewError(http.StatusConflict, fmt.Sprintf("%s %s was published and deleted; a version is never published again (publish a new version)", name, httpx.QuoteName(version)))
	}
	return httpx.NewError(http.StatusConflict, fmt.Sprintf("%s %s is published already with another zip; versions are immutable (publish a new version)", name, httpx.QuoteName(version)))
}

func (cm *composerMirror) deleteVersion(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("vendor") + "/" + r.PathValue("package")
	if !ValidName(name) {
		return httpx.BadRequest("%s is not a valid lowercase vendor/package name", httpx.QuoteName(name))
	}
	normalized, err := NormalizeVersion(r.PathValue("version"))
	if err != nil {
		return httpx.BadRequest("%v", err)
	}
	audit.Noted(r.Context(), audit.Delete, name, r.PathValue("version"))
	errMissing := errors.New("missing")
	err = cm.repo.Update(r.Context(), name, func(old []byte) ([]byte, error) {
		idx, err := ParseHostedIndex(old, name)
		if err != nil {
			return nil, err
		}
		if idx.Versions[normalized] == nil {
			return nil, errMissing
		}
		if idx.Deleted == nil {
			idx.Deleted = map[string]string{}
		}
		idx.Deleted[normalized] = idx.Versions[normalized].Shasum()
		delete(idx.Versions, normalized)
		return idx.Marshal(), nil
	})
	if errors.Is(err, errMissing) {
		return httpx.NewError(http.StatusNotFound, fmt.Sprintf("%s has no published version %s", name, normalized))
	}
	if err != nil {
		return err
	}
	cm.env.Log.Info("package version deleted", "mirror", cm.m.Name, "package", name, "version", normalized)
	return httpx.WriteJSON(w, http.StatusOK, map[string]string{"deleted": name + " " + normalized})
}

// list answers Packagist's list.json shape with the hosted names.
func (cm *composerMirror) list(w http.ResponseWriter, r *http.Request) error {
	n, err := cm.repo.Names(r.Context())
	if err != nil {
		return err
	}
	return httpx.WriteJSON(w, http.StatusOK, map[string][]string{"packageNames": append([]string{}, n.List...)})
}

// hostedP2 are the two p2 files of one index version.
type hostedP2 struct{ stable, dev *fetch.Doc }

// hostedP2 serves the p2 file of a published package.
func (cm *composerMirror) serveHostedP2(w http.ResponseWriter, r *http.Request, name string, dev bool) error {
	x, err := cm.repo.Index(r.Context(), name)
	if err != nil {
		return err
	}
	v, err := x.Parsed(func(b []byte) (any, error) {
		idx, err := ParseHostedIndex(b, name)
		if err != nil {
			return nil, err
		}
		return &hostedP2{stable: fetch.NewDoc(idx.P2(false), "s"), dev: fetch.NewDoc(idx.P2(true), "d")}, nil
	})
	if err != nil {
		return &httpx.UpstreamError{Status: http.StatusInternalServerError, Msg: err.Error()}
	}
	d := v.(*hostedP2).stable
	if dev {
		d = v.(*hostedP2).dev
	}
	return fetch.ServeDoc(w, r, d, httpx.HeaderJSON, fetch.HostedEntry(x.ModTime))
}

// hostedDist serves a published zip: /zipball/<name>/<version>/ref<sha1>.zip
// (unless known malware of the name matches its version: see
// policy.JudgeHosted).
func (cm *composerMirror) hostedDist(w http.ResponseWriter, r *http.Request, name, version, ref, typ string) error {
	if typ != "zip" || !ValidSHA1(ref) {
		return httpx.NewError(http.StatusNotFound, fmt.Sprintf("%s is published here; no such dist", name))
	}
	if why, v := policy.JudgeHosted(cm.m.Rules, name, version, denyForm(version)); v.Advice != nil {
		if err := cm.env.FileVerdict(w, r, why, v); err != nil {
			return refuse(w, http.StatusForbidden, why)
		}
	}
	return cm.env.Core.ServeHostedFile(w, r, cm.repo, cm.distPath(name, ref))
}

// hostedRoots caches the packages.json of a repository that only hosts,
// per mount prefix and names version.
type hostedRoots struct {
	mu   sync.Mutex
	gen  string
	docs map[string]*fetch.Doc
}

func (h *hostedRoots) get(prefix string, n *hosted.Names) *fetch.Doc {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gen != n.Gen || h.docs == nil {
		h.gen, h.docs = n.Gen, map[string]*fetch.Doc{}
	}
	d := h.docs[prefix]
	if d == nil {
		d = fetch.NewDoc(HostedRoot(prefix, n.List), "r")
		h.docs[prefix] = d
	}
	return d
}

// hostedOnlyRoot serves packages.json of a mirror without upstream.
func (cm *composerMirror) hostedOnlyRoot(w http.ResponseWriter, r *http.Request) error {
	n, err := cm.repo.Names(r.Context())
	if err != nil {
		return err
	}
	d := cm.roots.get(httpx.MountPrefix(r, cm.m.Name), n)
	return fetch.ServeDoc(w, r, d, httpx.HeaderJSON, fetch.HostedEntry(time.Time{}))
}

// ownedBy reports whether name is published here.
func (cm *composerMirror) ownedBy(ctx context.Context, name string) (bool, error) {
	return hosted.Owns(ctx, cm.repo, cm.m.URL == "", name)
}
