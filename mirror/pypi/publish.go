package pypi

import (
	"context"
	"errors"
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

// PyPI publishing with the legacy upload API that twine, poetry and uv
// speak: POST /<mirror>/legacy/ (never redirected: twine aborts on any
// 3xx), multipart with :action=file_upload and the file in "content".
// A file name is published once: the same bytes again succeed (a retry,
// as PyPI answers it), other bytes are a 400 "File already exists", which
// twine --skip-existing passes over; a release has one sdist, and one
// wheel per set of tags, however its version is spelled (1.0 is 1.0.0).

func (pm *pypiMirror) registerHosted(rt mirror.Router) {
	rt.Write(http.MethodPost, "/legacy/", pm.upload)
	rt.Write(http.MethodPost, "/legacy", pm.upload)
}

// clash is a refusal found inside the index update.
type clash struct{ error }

func (pm *pypiMirror) filePath(project, sha256, filename string) string {
	return "files/" + project + "/" + sha256 + "/" + filename
}

func (pm *pypiMirror) upload(w http.ResponseWriter, r *http.Request) error {
	u, err := pm.env.Uploads.Form(w, r, "content")
	if err != nil {
		return err
	}
	defer u.Close()
	f := u.Fields
	if a := f[":action"]; a != "file_upload" {
		return httpx.BadRequest("unsupported :action %s (only file_upload is)", httpx.QuoteName(a))
	}
	rawName, version := strings.TrimSpace(f["name"]), strings.TrimSpace(f["version"])
	if !ValidName(rawName) {
		return httpx.BadRequest("%s is not a valid project name", httpx.QuoteName(rawName))
	}
	if version == "" {
		return httpx.BadRequest("the form has no version")
	}
	project := Normalize(rawName)
	audit.Noted(r.Context(), audit.Publish, project, version)
	df, err := ParseDistFilename(u.Filename)
	if err != nil {
		return httpx.BadRequest("%v", err)
	}
	if Normalize(df.Name) != project || !SameVersion(df.Version, version) {
		return httpx.BadRequest("the file name %s does not match the project %s version %s", httpx.QuoteName(u.Filename), httpx.QuoteName(rawName), httpx.QuoteName(version))
	}
	want := strings.ToLower(strings.TrimSpace(f["sha256_digest"]))
	if want == "" {
		return httpx.BadRequest("the form has no sha256_digest")
	}
	if want != u.File.SHA256 {
		return httpx.BadRequest("sha256_digest %s does not match the uploaded bytes (sha256 %s)", httpx.QuoteName(want), u.File.SHA256)
	}
	if md5 := strings.ToLower(strings.TrimSpace(f["md5_digest"])); md5 != "" && md5 != u.File.MD5 {
		return httpx.BadRequest("md5_digest does not match the uploaded bytes")
	}
	var meta []byte
	if df.Wheel {
		meta, err = WheelMetadata(u.File, u.File.Size)
	} else {
		meta, err = SdistMetadata(u.File, u.File.Size, df.Ext)
	}
	if err != nil {
		return httpx.BadRequest("%v", err)
	}
	mh := MetadataHeader(meta)
	if n := mh.Get("Name"); n == "" || Normalize(n) != project || !SameVersion(mh.Get("Version"), version) {
		return httpx.BadRequest("the file's core metadata names %s %s, the form %s %s", httpx.QuoteName(n), httpx.QuoteName(mh.Get("Version")), httpx.QuoteName(rawName), httpx.QuoteName(version))
	}
	hf := HostedFile{Filename: u.Filename, Version: version, SHA256: u.File.SHA256, Size: u.File.Size,
		UploadTime:     time.Now().UTC().Format("2006-01-02T15:04:05.000000Z"),
		RequiresPython: strings.TrimSpace(mh.Get("Requires-Python"))}
	if hf.RequiresPython == "" {
		hf.RequiresPython = strings.TrimSpace(f["requires_python"])
	}
	ctx := r.Context()
	if x, err := pm.repo.Index(ctx, project); err == nil {
		if idx, err := ParseHostedIndex(x.Body, project); err == nil {
			if _, err := idx.Clash(hf, df); err != nil {
				return httpx.BadRequest("%v", err)
			}
		}
	}
	// The file first, then its metadata, then the index that makes them
	// visible: a reader never finds an index entry without its file.
	path := pm.filePath(project, u.File.SHA256, u.Filename)
	if err := pm.repo.PutSpooled(ctx, path, u.File, httpx.ContentType(u.Filename)); err != nil {
		return err
	}
	if df.Wheel || ReliableMetadata(mh) {
		sum := sha256Hex(meta)
		if err := pm.repo.PutFile(ctx, path+".metadata", strings.NewReader(string(meta)), int64(len(meta)), "text/plain"); err != nil {
			return err
		}
		hf.MetadataSHA256 = sum
	}
	err = pm.repo.Update(ctx, project, func(old []byte) ([]byte, error) {
		idx, err := ParseHostedIndex(old, project)
		if err != nil {
			return nil, err
		}
		if same, err := idx.Clash(hf, df); same || err != nil {
			if err != nil {
				err = &clash{err}
			}
			return old, err // same: an identical retry, nothing to write
		}
		idx.Files = append(idx.Files, hf)
		return idx.Marshal(), nil
	})
	var c *clash
	if errors.As(err, &c) {
		return httpx.BadRequest("%v", c.error)
	}
	if err != nil {
		return err
	}
	pm.env.Log.Info("file published", "mirror", pm.m.Name, "project", project, "file", u.Filename, "sha256", u.File.SHA256, "bytes", u.File.Size)
	return httpx.WriteText(w, http.StatusOK, "OK\n")
}

// ownedBy reports whether project is published here.
func (pm *pypiMirror) ownedBy(ctx context.Context, project string) (bool, error) {
	return hosted.Owns(ctx, pm.repo, pm.m.URL == "", project)
}

// hostedPage serves the simple page of a published project.
func (pm *pypiMirror) hostedPage(w http.ResponseWriter, r *http.Request, project, typ string) error {
	page, x, err := pm.hostedProject(r.Context(), project)
	if err != nil {
		return err
	}
	d := page.html
	if typ == JSONType {
		d = page.json
	}
	return fetch.ServeDoc(w, r, d, hvTypes[typ], fetch.HostedEntry(x.ModTime))
}

func (pm *pypiMirror) hostedProject(ctx context.Context, project string) (*rendered, *hosted.Index, error) {
	x, err := pm.repo.Index(ctx, project)
	if err != nil {
		return nil, nil, err
	}
	v, err := x.Parsed(func(b []byte) (any, error) {
		idx, err := ParseHostedIndex(b, project)
		if err != nil {
			return nil, err
		}
		p := idx.Project()
		return &rendered{json: fetch.NewDoc(p.RenderJSON(project), "j"), html: fetch.NewDoc(p.RenderHTML(project), "h"), project: p}, nil
	})
	if err != nil {
		return nil, nil, &httpx.UpstreamError{Status: http.StatusInternalServerError, Msg: err.Error()}
	}
	return v.(*rendered), x, nil
}

// hostedFile serves a published file or its core metadata (the file
// unless known malware of the project matches its version: see
// policy.JudgeHosted).
func (pm *pypiMirror) hostedFile(w http.ResponseWriter, r *http.Request, project, key, filename string) error {
	if base, isMeta := strings.CutSuffix(filename, ".metadata"); !isMeta {
		if why, v := policy.JudgeHosted(pm.rules, project, fileVersion(base)); v.Advice != nil {
			if err := pm.env.FileVerdict(w, r, why, v); err != nil {
				return err
			}
		}
	}
	return pm.env.Core.ServeHostedFile(w, r, pm.repo, pm.filePath(project, key, filename))
}

// hostedRootList is the project list of a mirror: the upstream's names
// (none without upstream) and the published ones, rendered once per
// version of each.
type hostedRootList struct {
	mu       sync.Mutex
	upstream *fetch.MetaEntry
	gen      string
	r        *rendered
}

func (h *hostedRootList) get(upstream *fetch.MetaEntry, upstreamNames []string, n *hosted.Names) *rendered {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.r != nil && h.upstream == upstream && h.gen == n.Gen {
		return h.r
	}
	idx := &Index{Names: append([]string{}, upstreamNames...)}
	seen := map[string]bool{}
	for _, x := range upstreamNames {
		seen[Normalize(x)] = true
	}
	for _, x := range n.List {
		if !seen[x] {
			idx.Names = append(idx.Names, x)
		}
	}
	h.upstream, h.gen = upstream, n.Gen
	h.r = &rendered{json: fetch.NewDoc(idx.RenderJSON(), "j"), html: fetch.NewDoc(idx.RenderHTML(), "h")}
	return h.r
}
