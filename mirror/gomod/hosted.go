package gomod

import (
	"archive/zip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
	modzip "golang.org/x/mod/zip"

	"github.com/mirror-proxy/mirror-proxy/audit"
	"github.com/mirror-proxy/mirror-proxy/hosted"
	"github.com/mirror-proxy/mirror-proxy/httpx"
)

// Hosting: PUT /<mirror>/<module>/@v/<version>.zip with a write token
// publishes a module version, the zip laid out as the go command makes it
// (checked with golang.org/x/mod/zip: file names, sizes, the module's own
// go.mod); its .mod is the zip's go.mod ("module <path>" when it has
// none) and its .info records the publish time. Files are stored by
// content (sha256); the module's index object is the one commit point; an
// identical retry succeeds, other bytes for a published version are a 409,
// for good. A published module path is owned, and so are the paths below
// it: none of them comes from the upstream again (a module below one is
// published here, or is a 404). The index is named by
// the escaped path, so names differing in case never share a key.

// hostedVersion is one published version in a module's index.
type hostedVersion struct {
	Zip    string    `json:"zip"` // repository paths
	Mod    string    `json:"mod"`
	SHA256 string    `json:"sha256"`
	Time   time.Time `json:"time"`
}

type hostedIndex struct {
	Versions map[string]hostedVersion `json:"versions"`
}

func parseHostedIndex(b []byte) (any, error) {
	x := &hostedIndex{Versions: map[string]hostedVersion{}}
	if len(b) == 0 {
		return x, nil
	}
	if err := json.Unmarshal(b, x); err != nil {
		return nil, err
	}
	if x.Versions == nil {
		x.Versions = map[string]hostedVersion{}
	}
	return x, nil
}

// owner is the published module path that req's module is, or is below
// ("" : none).
func (gm *goMirror) owner(ctx context.Context, escaped string) (string, error) {
	if gm.env.Repo == nil {
		return "", nil
	}
	n, err := gm.env.Repo.Names(ctx)
	if err != nil {
		return "", err
	}
	for p := escaped; p != ""; {
		if n.Set[p] {
			return p, nil
		}
		i := strings.LastIndexByte(p, '/')
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return "", nil
}

// hostedIndexOf reads a published module's index.
func (gm *goMirror) hostedIndexOf(ctx context.Context, escaped string) (*hostedIndex, error) {
	x, err := gm.env.Repo.Index(ctx, escaped)
	if err != nil {
		return nil, err
	}
	v, err := x.Parsed(parseHostedIndex)
	if err != nil {
		return nil, err
	}
	return v.(*hostedIndex), nil
}

// serveHosted answers a request for a module published here (or below
// one: a path under a published one that is not itself published is a
// 404, never the upstream's).
func (gm *goMirror) serveHosted(w http.ResponseWriter, r *http.Request, req Request) error {
	x, err := gm.hostedIndexOf(r.Context(), req.Escaped)
	if err != nil {
		return err
	}
	var versions []string
	for v := range x.Versions {
		versions = append(versions, v)
	}
	sort.Slice(versions, func(i, j int) bool { return semver.Compare(versions[i], versions[j]) < 0 })
	infoOf := func(v string) []byte {
		b, _ := json.Marshal(map[string]any{"Version": v, "Time": x.Versions[v].Time.UTC().Format(time.RFC3339)})
		return b
	}
	switch req.Kind {
	case "list":
		w.Header()["Content-Type"] = hvText
		_, err := io.WriteString(w, strings.Join(append(versions, ""), "\n"))
		return err
	case "latest":
		if len(versions) == 0 {
			return httpx.NewError(http.StatusNotFound, req.Module+" has no published version")
		}
		return httpx.WriteBlob(w, http.StatusOK, "application/json", infoOf(versions[len(versions)-1]))
	}
	hv, ok := x.Versions[req.Version]
	if !ok {
		return httpx.NewError(http.StatusNotFound, req.Module+"@"+req.Version+" is not published here")
	}
	switch req.Kind {
	case "info":
		return httpx.WriteBlob(w, http.StatusOK, "application/json", infoOf(req.Version))
	case "mod":
		w.Header()["Content-Type"] = hvText
		return gm.env.Core.ServeHostedFile(w, r, gm.env.Repo, hv.Mod)
	}
	w.Header()["Content-Type"] = hvZip
	return gm.env.Core.ServeHostedFile(w, r, gm.env.Repo, hv.Zip)
}

// errVersionTaken: the version is published with other bytes.
var errVersionTaken = errors.New("version taken")

// publish takes PUT <module>/@v/<version>.zip.
func (gm *goMirror) publish(w http.ResponseWriter, r *http.Request) error {
	if gm.env.Repo == nil {
		return httpx.NewError(http.StatusMethodNotAllowed, "this mirror does not host modules (set \"hosted\": true)")
	}
	req, err := ParseRequest(r.PathValue("rest"))
	if err != nil || req.Kind != "zip" {
		return httpx.BadRequest("publish with PUT /<mirror>/<module>/@v/<version>.zip (%v)", err)
	}
	sp, err := gm.env.Uploads.Body(w, r)
	if err != nil {
		return err
	}
	defer sp.Remove()
	audit.Noted(r.Context(), audit.Publish, req.Module, req.Version)
	mv := module.Version{Path: req.Module, Version: req.Version}
	gomod, err := checkModuleZip(mv, sp)
	if err != nil {
		return httpx.BadRequest("%s@%s: %v", req.Module, req.Version, err)
	}
	ev, _ := module.EscapeVersion(req.Version)
	zipPath := req.Escaped + "/@v/" + sp.SHA256 + ".zip"
	modPath := req.Escaped + "/@v/" + ev + "-" + sp.SHA256 + ".mod"
	// Known already: an identical retry, or a conflict, before storing.
	if x, err := gm.hostedIndexOf(r.Context(), req.Escaped); err != nil {
		return err
	} else if hv, ok := x.Versions[req.Version]; ok {
		if hv.SHA256 != sp.SHA256 {
			return httpx.NewError(http.StatusConflict, fmt.Sprintf("%s@%s is published already with other contents; versions are never reused", req.Module, req.Version))
		}
		return httpx.WriteJSON(w, http.StatusOK, map[string]string{"ok": "published already", "sha256": sp.SHA256})
	}
	if err := gm.env.Repo.PutSpooled(r.Context(), zipPath, sp, "application/zip"); err != nil {
		return err
	}
	if err := gm.env.Repo.PutFile(r.Context(), modPath, strings.NewReader(gomod), int64(len(gomod)), "text/plain; charset=utf-8"); err != nil {
		return err
	}
	now := time.Now().UTC()
	err = gm.env.Repo.Update(r.Context(), req.Escaped, func(old []byte) ([]byte, error) {
		v, err := parseHostedIndex(old)
		if err != nil {
			return nil, err
		}
		x := v.(*hostedIndex)
		if hv, ok := x.Versions[req.Version]; ok {
			if hv.SHA256 == sp.SHA256 {
				return old, nil
			}
			return nil, errVersionTaken
		}
		x.Versions[req.Version] = hostedVersion{Zip: zipPath, Mod: modPath, SHA256: sp.SHA256, Time: now}
		return json.Marshal(x)
	})
	if errors.Is(err, errVersionTaken) {
		return httpx.NewError(http.StatusConflict, fmt.Sprintf("%s@%s is published already with other contents; versions are never reused", req.Module, req.Version))
	}
	if err != nil {
		return err
	}
	return httpx.WriteJSON(w, http.StatusCreated, map[string]string{"ok": "published " + req.Module + "@" + req.Version, "sha256": sp.SHA256})
}

// checkModuleZip checks a module zip as the go command would accept it
// and returns its go.mod ("module <path>" when it has none).
func checkModuleZip(mv module.Version, sp *hosted.Spooled) (string, error) {
	name := fmt.Sprintf("/proc/self/fd/%d", sp.Fd()) // the spool has no name of its own
	if _, err := os.Stat(name); err != nil {
		return "", fmt.Errorf("cannot check the zip here: %v", err)
	}
	cf, err := modzip.CheckZip(mv, name)
	if err != nil {
		return "", err
	}
	if err := cf.Err(); err != nil {
		return "", err
	}
	zr, err := zip.NewReader(sp.File, sp.Size)
	if err != nil {
		return "", err
	}
	for _, f := range zr.File {
		if f.Name != mv.Path+"@"+mv.Version+"/go.mod" {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return "", err
		}
		b, err := io.ReadAll(io.LimitReader(rc, maxModBytes+1))
		rc.Close()
		if err != nil {
			return "", err
		}
		mf, err := modfile.ParseLax("go.mod", b, nil)
		if err != nil {
			return "", fmt.Errorf("go.mod: %v", err)
		}
		if mf.Module == nil || mf.Module.Mod.Path != mv.Path {
			return "", fmt.Errorf("its go.mod is not that of module %s", mv.Path)
		}
		return string(b), nil
	}
	return "module " + modfile.AutoQuote(mv.Path) + "\n", nil
}
