package rubygems

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mirror-proxy/mirror-proxy/audit"
	"github.com/mirror-proxy/mirror-proxy/fetch"
	"github.com/mirror-proxy/mirror-proxy/httpx"
	"github.com/mirror-proxy/mirror-proxy/policy"
)

// Hosting: gem push (POST /api/v1/gems, the .gem as the body, the key as
// the whole Authorization header) and gem yank (DELETE /api/v1/gems/yank)
// with a write token. The gem's specification (metadata.gz) gives its
// name, version, platform and requirements; the .gem is stored by content
// and the gem's index object is the one commit point. A version is never
// replaced (other bytes: 409; the same: 200). A pushed name (compared
// case-insensitively, as rubygems.org does) is owned: its /info and .gem
// files come from the proxy's own index, never the upstream, and /versions
// lists it after the upstream's lines (Bundler takes the last line of a
// name), with the MD5 of the /info the proxy serves.

type hostedVersion struct {
	Version string `json:"version"` // with -platform
	File    string `json:"file"`
	Path    string `json:"path"`
	SHA256  string `json:"sha256"`
	Line    string `json:"line"`
	Yanked  bool   `json:"yanked"`
}

type hostedGem struct {
	Name     string          `json:"name"`
	Versions []hostedVersion `json:"versions"`
}

func parseHosted(b []byte) (any, error) {
	h := &hostedGem{}
	if len(b) == 0 {
		return h, nil
	}
	return h, json.Unmarshal(b, h)
}

func canonical(name string) string { return strings.ToLower(name) }

func (gm *gemsMirror) owned(ctx context.Context, name string) (bool, error) {
	if gm.env.Repo == nil {
		return false, nil
	}
	return gm.env.Repo.Owns(ctx, canonical(name))
}

func (gm *gemsMirror) hostedGem(ctx context.Context, name string) (*hostedGem, error) {
	x, err := gm.env.Repo.Index(ctx, canonical(name))
	if err != nil {
		return nil, err
	}
	v, err := x.Parsed(parseHosted)
	if err != nil {
		return nil, err
	}
	return v.(*hostedGem), nil
}

// hostedInfo is a pushed gem's /info (versions not yanked).
func hostedInfo(h *hostedGem) []byte {
	var b strings.Builder
	b.WriteString("---\n")
	for _, v := range h.Versions {
		if !v.Yanked {
			b.WriteString(v.Line + "\n")
		}
	}
	return []byte(b.String())
}

// hostedVersionsLines are the /versions lines of the pushed gems.
func (gm *gemsMirror) hostedVersionsLines(ctx context.Context) (string, error) {
	if gm.env.Repo == nil {
		return "", nil
	}
	n, err := gm.env.Repo.Names(ctx)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, name := range n.List {
		h, err := gm.hostedGem(ctx, name)
		if err != nil {
			return "", err
		}
		var vs []string
		for _, v := range h.Versions {
			if !v.Yanked {
				vs = append(vs, v.Version)
			}
		}
		if h.Name == "" || len(vs) == 0 {
			continue
		}
		sum := md5.Sum(hostedInfo(h))
		fmt.Fprintf(&b, "%s %s %s\n", h.Name, strings.Join(vs, ","), hex.EncodeToString(sum[:]))
	}
	return b.String(), nil
}

// versions serves /versions: the upstream's, and the pushed gems' lines
// after it.
func (gm *gemsMirror) versions(w http.ResponseWriter, r *http.Request) error {
	lines, err := gm.hostedVersionsLines(r.Context())
	if err != nil {
		return err
	}
	if _, snap := policy.Snapshot(r); !snap && gm.m.URL != "" {
		over, _ := gm.over.snapshot()
		lines += over // after the pushed gems': a filtered /info's MD5 (see policy.go)
	}
	if gm.m.URL == "" {
		body := []byte("created_at: 2024-01-01T00:00:00Z\n---\n" + lines)
		sum := md5.Sum(body)
		return serveBytes(w, r, body, `"`+hex.EncodeToString(sum[:])+`"`)
	}
	res, err := gm.meta(r.Context(), "versions", true)
	if err != nil {
		return err
	}
	if lines == "" {
		return gm.serveIndexDoc(w, r, res)
	}
	sum := sha256.Sum256([]byte(lines))
	key := fetch.DerivedKey{ID: res.Entry.ID(), Day: hex.EncodeToString(sum[:8])}
	v, ok := gm.derived.Lookup(key, time.Now())
	if !ok {
		body, err := res.Entry.Body()
		if err != nil {
			return err
		}
		v = gm.derived.Get(key, time.Now(), func() (any, policy.Window) {
			out := make([]byte, 0, len(body)+len(lines)+1)
			out = append(out, body...)
			if len(out) > 0 && out[len(out)-1] != '\n' {
				out = append(out, '\n')
			}
			out = append(out, lines...)
			m := md5.Sum(out)
			return &merged{body: out, etag: `"` + hex.EncodeToString(m[:]) + `"`}, policy.Window{}
		})
	}
	// Bundler takes an ETag as the MD5 of the whole file: the merged
	// document's is (see serveIndexDoc).
	mv := v.(*merged)
	return serveBytes(w, r, mv.body, mv.etag)
}

// merged is /versions with the pushed gems' lines, and its MD5 ETag.
type merged struct {
	body []byte
	etag string
}

func (m *merged) Weight() int64 { return int64(len(m.body)) }

var errVersionTaken = errors.New("taken")

// push takes gem push.
func (gm *gemsMirror) push(w http.ResponseWriter, r *http.Request) error {
	if gm.env.Repo == nil {
		return httpx.NewError(http.StatusMethodNotAllowed, "this repository does not take pushes (set \"hosted\": true)")
	}
	sp, err := gm.env.Uploads.Body(w, r)
	if err != nil {
		return err
	}
	defer sp.Remove()
	spec, err := ReadSpec(sp.Reader())
	if err != nil {
		return httpx.BadRequest("%v", err)
	}
	audit.Noted(r.Context(), audit.Publish, spec.Name, spec.FullVersion())
	line := spec.InfoLine(sp.SHA256)
	check := func(h *hostedGem) error {
		if h.Name != "" && h.Name != spec.Name {
			return httpx.NewError(http.StatusConflict, fmt.Sprintf("%s is pushed here as %s", spec.Name, h.Name))
		}
		for _, v := range h.Versions {
			if v.Version == spec.FullVersion() {
				if v.SHA256 == sp.SHA256 {
					return errIdenticalPush
				}
				return errVersionTaken
			}
		}
		return nil
	}
	ctx := r.Context()
	if h, err := gm.hostedGem(ctx, spec.Name); err != nil {
		return err
	} else if err := check(h); err != nil {
		return pushAnswer(w, spec, err)
	}
	path := "gems/" + sp.SHA256 + "/" + spec.File()
	if err := gm.env.Repo.PutSpooled(ctx, path, sp, "application/octet-stream"); err != nil {
		return err
	}
	err = gm.env.Repo.Update(ctx, canonical(spec.Name), func(old []byte) ([]byte, error) {
		v, err := parseHosted(old)
		if err != nil {
			return nil, err
		}
		h := v.(*hostedGem)
		if err := check(h); err != nil {
			if errors.Is(err, errIdenticalPush) {
				return old, nil
			}
			return nil, err
		}
		h.Name = spec.Name
		h.Versions = append(h.Versions, hostedVersion{Version: spec.FullVersion(), File: spec.File(), Path: path, SHA256: sp.SHA256, Line: line})
		return json.Marshal(h)
	})
	return pushAnswer(w, spec, err)
}

var errIdenticalPush = errors.New("identical")

func pushAnswer(w http.ResponseWriter, spec Spec, err error) error {
	switch {
	case err == nil, errors.Is(err, errIdenticalPush):
		return httpx.WriteBlob(w, http.StatusOK, "text/plain", []byte("Successfully registered gem: "+spec.Name+" ("+spec.FullVersion()+")"))
	case errors.Is(err, errVersionTaken):
		return httpx.NewError(http.StatusConflict, fmt.Sprintf("Repushing of gem versions is not allowed: %s (%s) is pushed already with other contents", spec.Name, spec.FullVersion()))
	}
	return err
}

// yank takes gem yank (DELETE /api/v1/gems/yank, gem_name, version and
// platform as form or query values): the version leaves /info and
// /versions; its file stays downloadable (lock files name it).
func (gm *gemsMirror) yank(w http.ResponseWriter, r *http.Request) error {
	if gm.env.Repo == nil {
		return httpx.NewError(http.StatusMethodNotAllowed, "this repository does not take pushes")
	}
	// gem yank sends a form body with DELETE, which ParseForm leaves.
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		return httpx.BadRequest("the yank request was not received: %v", err)
	}
	form, _ := url.ParseQuery(string(body))
	for k, vs := range r.URL.Query() {
		form[k] = append(form[k], vs...)
	}
	name, version, platform := form.Get("gem_name"), form.Get("version"), form.Get("platform")
	if !ValidName(name) || version == "" {
		return httpx.BadRequest("yank needs gem_name and version")
	}
	full := version
	audit.Noted(r.Context(), audit.Yank, name, version)
	if platform != "" && platform != "ruby" {
		full += "-" + platform
	}
	errMissing := errors.New("missing")
	err = gm.env.Repo.Update(r.Context(), canonical(name), func(old []byte) ([]byte, error) {
		v, err := parseHosted(old)
		if err != nil {
			return nil, err
		}
		h := v.(*hostedGem)
		for i := range h.Versions {
			if h.Versions[i].Version == full {
				if h.Versions[i].Yanked {
					return old, nil
				}
				h.Versions[i].Yanked = true
				return json.Marshal(h)
			}
		}
		return nil, errMissing
	})
	if errors.Is(err, errMissing) {
		return httpx.NewError(http.StatusNotFound, fmt.Sprintf("%s (%s) is not pushed here", name, full))
	}
	if err != nil {
		return err
	}
	return httpx.WriteBlob(w, http.StatusOK, "text/plain", []byte("Successfully deleted gem: "+name+" ("+full+")"))
}

// hostedGemFile serves a pushed .gem (yanked ones too).
func (gm *gemsMirror) hostedGemFile(w http.ResponseWriter, r *http.Request, name, file string) error {
	h, err := gm.hostedGem(r.Context(), name)
	if err != nil {
		return err
	}
	for _, v := range h.Versions {
		if v.File == file {
			w.Header()["Content-Type"] = hvBinary
			return gm.env.Core.ServeHostedFile(w, r, gm.env.Repo, v.Path)
		}
	}
	return httpx.NewError(http.StatusNotFound, file+" is not pushed here")
}
