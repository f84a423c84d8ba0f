package cargo

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/mirror-proxy/mirror-proxy/audit"
	"github.com/mirror-proxy/mirror-proxy/fetch"
	"github.com/mirror-proxy/mirror-proxy/httpx"
)

// Hosting: cargo publish (PUT /api/v1/crates/new: the publish JSON and
// the .crate, each after its length), cargo yank and unyank, with a write
// token (Cargo sends it as the whole Authorization header). Names are
// compared as crates.io compares them, ignoring case and taking - and _
// as one: a crate is published under one spelling only, and that name is
// never taken from the upstream again. A version is immutable (an
// identical retry succeeds, other bytes are a 409, for good); the .crate
// is stored by content and the crate's index object is the one commit
// point. The index file served for a published crate is made from that
// object, so cargo publish sees its version at once. Errors are in
// Cargo's {"errors":[{"detail":...}]} shape, which cargo prints.

// Canonical is a crate name as crates.io compares names.
func Canonical(name string) string { return strings.ReplaceAll(strings.ToLower(name), "_", "-") }

// hostedCrate is a published crate's index object.
type hostedCrate struct {
	Name     string          `json:"name"` // as first published
	Versions []hostedVersion `json:"versions"`
}

type hostedVersion struct {
	Vers   string          `json:"vers"`
	Line   json.RawMessage `json:"line"` // the index line, yanked false
	Path   string          `json:"path"` // repository path of the .crate
	Cksum  string          `json:"cksum"`
	Yanked bool            `json:"yanked"`
}

func parseHosted(b []byte) (any, error) {
	h := &hostedCrate{}
	if len(b) == 0 {
		return h, nil
	}
	return h, json.Unmarshal(b, h)
}

// owned is the published crate name c is (canonical), or "".
func (cm *cargoMirror) owned(ctx context.Context, name string) (bool, error) {
	if cm.env.Repo == nil {
		return false, nil
	}
	return cm.env.Repo.Owns(ctx, Canonical(name))
}

func (cm *cargoMirror) hostedCrate(ctx context.Context, name string) (*hostedCrate, error) {
	x, err := cm.env.Repo.Index(ctx, Canonical(name))
	if err != nil {
		return nil, err
	}
	v, err := x.Parsed(parseHosted)
	if err != nil {
		return nil, err
	}
	return v.(*hostedCrate), nil
}

// hostedIndex serves the index file of a published crate.
func (cm *cargoMirror) hostedIndex(w http.ResponseWriter, r *http.Request, name string) error {
	h, err := cm.hostedCrate(r.Context(), name)
	if err != nil {
		return err
	}
	if len(h.Versions) == 0 || strings.ToLower(h.Name) != name {
		return httpx.NewError(http.StatusNotFound, fmt.Sprintf("%s is published here as %s", name, h.Name))
	}
	var b strings.Builder
	for _, v := range h.Versions {
		var line map[string]json.RawMessage
		if json.Unmarshal(v.Line, &line) != nil {
			continue
		}
		line["yanked"], _ = json.Marshal(v.Yanked)
		out, _ := json.Marshal(line)
		b.Write(out)
		b.WriteByte('\n')
	}
	w.Header().Set("Cache-Control", "no-cache")
	return httpx.WriteBlob(w, http.StatusOK, "text/plain; charset=utf-8", []byte(b.String()))
}

// hostedDownload serves a published .crate.
func (cm *cargoMirror) hostedDownload(w http.ResponseWriter, r *http.Request, name, vers string) error {
	h, err := cm.hostedCrate(r.Context(), name)
	if err != nil {
		return err
	}
	for _, v := range h.Versions {
		if v.Vers == vers {
			w.Header()["Content-Type"] = hvBinary
			return cm.env.Core.ServeHostedFile(w, r, cm.env.Repo, v.Path)
		}
	}
	return httpx.NewError(http.StatusNotFound, fmt.Sprintf("%s %s is not published here", name, vers))
}

// cargoErrors answers h's errors in Cargo's shape.
func cargoErrors(h func(http.ResponseWriter, *http.Request) error) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		err := h(w, r)
		if err == nil {
			return nil
		}
		he := httpx.ErrorOf(err)
		return httpx.WriteJSON(w, he.Code, map[string]any{"errors": []map[string]string{{"detail": he.Msg}}})
	}
}

// publishMeta is the part of cargo publish's JSON the index needs.
type publishMeta struct {
	Name     string                     `json:"name"`
	Vers     string                     `json:"vers"`
	Deps     []publishDep               `json:"deps"`
	Features map[string]json.RawMessage `json:"features"`
	Links    *string                    `json:"links"`
	Rust     *string                    `json:"rust_version"`
}

type publishDep struct {
	Name            string   `json:"name"`
	VersionReq      string   `json:"version_req"`
	Features        []string `json:"features"`
	Optional        bool     `json:"optional"`
	DefaultFeatures bool     `json:"default_features"`
	Target          *string  `json:"target"`
	Kind            string   `json:"kind"`
	Registry        *string  `json:"registry"`
	ExplicitName    *string  `json:"explicit_name_in_toml"`
}

// maxPublishJSON bounds the publish JSON.
const maxPublishJSON = 1 << 20

var errTaken = errors.New("taken")

// publish takes cargo publish's PUT /api/v1/crates/new.
func (cm *cargoMirror) publish(w http.ResponseWriter, r *http.Request) error {
	if cm.env.Repo == nil {
		return httpx.NewError(http.StatusMethodNotAllowed, "this registry does not host crates (set \"hosted\": true)")
	}
	sp, err := cm.env.Uploads.Body(w, r)
	if err != nil {
		return err
	}
	defer sp.Remove()
	var n [4]byte
	if _, err := sp.ReadAt(n[:], 0); err != nil {
		return httpx.BadRequest("not a cargo publish body")
	}
	jlen := int64(binary.LittleEndian.Uint32(n[:]))
	if jlen > maxPublishJSON || 4+jlen+4 > sp.Size {
		return httpx.BadRequest("not a cargo publish body: metadata of %d bytes", jlen)
	}
	raw := make([]byte, jlen)
	if _, err := sp.ReadAt(raw, 4); err != nil {
		return httpx.BadRequest("not a cargo publish body")
	}
	if _, err := sp.ReadAt(n[:], 4+jlen); err != nil {
		return httpx.BadRequest("not a cargo publish body")
	}
	clen := int64(binary.LittleEndian.Uint32(n[:]))
	off := 8 + jlen
	if off+clen != sp.Size {
		return httpx.BadRequest("not a cargo publish body: the .crate is %d bytes, the body has %d after the metadata", clen, sp.Size-off)
	}
	var meta publishMeta
	if err := json.Unmarshal(raw, &meta); err != nil {
		return httpx.BadRequest("publish metadata: %v", err)
	}
	audit.Noted(r.Context(), audit.Publish, meta.Name, meta.Vers)
	if !ValidName(meta.Name) || !versRe.MatchString(meta.Vers) {
		return httpx.BadRequest("%q %q is not a crate name and version", meta.Name, meta.Vers)
	}
	crate := io.NewSectionReader(sp, off, clen)
	if err := fetch.ArchiveCheck("tar.gz")(crate, clen); err != nil {
		return httpx.BadRequest("%s %s: the .crate is not a complete .tar.gz: %v", meta.Name, meta.Vers, err)
	}
	sum, err := sha256Of(crate)
	if err != nil {
		return err
	}
	line, err := indexLine(meta, sum)
	if err != nil {
		return httpx.BadRequest("%v", err)
	}
	ctx := r.Context()
	canon := Canonical(meta.Name)
	// Refused before anything is stored when known already.
	if h, err := cm.hostedCrate(ctx, meta.Name); err != nil {
		return err
	} else if err := checkPublish(h, meta, sum); err != nil {
		if errors.Is(err, errIdentical) {
			return publishOK(w)
		}
		return err
	}
	path := "crates/" + canon + "/" + sum + ".crate"
	if err := cm.env.Repo.PutFile(ctx, path, io.NewSectionReader(sp, off, clen), clen, "application/x-tar"); err != nil {
		return err
	}
	err = cm.env.Repo.Update(ctx, canon, func(old []byte) ([]byte, error) {
		v, err := parseHosted(old)
		if err != nil {
			return nil, err
		}
		h := v.(*hostedCrate)
		if err := checkPublish(h, meta, sum); err != nil {
			if errors.Is(err, errIdentical) {
				return old, nil
			}
			return nil, err
		}
		if h.Name == "" {
			h.Name = meta.Name
		}
		h.Versions = append(h.Versions, hostedVersion{Vers: meta.Vers, Line: line, Path: path, Cksum: sum})
		return json.Marshal(h)
	})
	if err != nil {
		return err
	}
	return publishOK(w)
}

var errIdentical = errors.New("identical")

// checkPublish says whether meta (with the .crate's sha256 sum) may be
// published on h: errIdentical for a retry of a published version.
func checkPublish(h *hostedCrate, meta publishMeta, sum string) error {
	if h.Name != "" && h.Name != meta.Name {
		return httpx.NewError(http.StatusConflict, fmt.Sprintf("crate %s is published here as %s: names differing only in case, - or _ are one crate", meta.Name, h.Name))
	}
	for _, v := range h.Versions {
		if v.Vers == meta.Vers {
			if v.Cksum == sum {
				return errIdentical
			}
			return httpx.NewError(http.StatusConflict, fmt.Sprintf("crate version %s %s is already published with other contents; versions are never reused", meta.Name, meta.Vers))
		}
	}
	return nil
}

func publishOK(w http.ResponseWriter) error {
	return httpx.WriteJSON(w, http.StatusOK, map[string]any{"warnings": map[string][]string{"invalid_categories": {}, "invalid_badges": {}, "other": {}}})
}

// indexLine is the index line of a published version.
func indexLine(meta publishMeta, sum string) (json.RawMessage, error) {
	deps := []map[string]any{}
	for _, d := range meta.Deps {
		if !ValidName(d.Name) {
			return nil, fmt.Errorf("dependency %q is not a crate name", d.Name)
		}
		dep := map[string]any{"name": d.Name, "req": d.VersionReq, "features": d.Features, "optional": d.Optional,
			"default_features": d.DefaultFeatures, "target": d.Target, "kind": d.Kind, "registry": d.Registry}
		if d.Features == nil {
			dep["features"] = []string{}
		}
		if d.Kind == "" {
			dep["kind"] = "normal"
		}
		if d.ExplicitName != nil && *d.ExplicitName != "" {
			dep["name"], dep["package"] = *d.ExplicitName, d.Name // renamed in Cargo.toml
		}
		deps = append(deps, dep)
	}
	features := meta.Features
	if features == nil {
		features = map[string]json.RawMessage{}
	}
	line := map[string]any{"name": meta.Name, "vers": meta.Vers, "deps": deps, "cksum": sum, "features": features,
		"yanked": false, "links": meta.Links, "v": 2, "pubtime": time.Now().UTC().Format(time.RFC3339)}
	if meta.Rust != nil {
		line["rust_version"] = *meta.Rust
	}
	return json.Marshal(line)
}

// yank marks a published version yanked (DELETE .../yank) or not (PUT
// .../unyank); the version stays downloadable, as on crates.io.
func (cm *cargoMirror) yank(yanked bool) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		if cm.env.Repo == nil {
			return httpx.NewError(http.StatusMethodNotAllowed, "this registry does not host crates")
		}
		name, vers := r.PathValue("crate"), r.PathValue("version")
		if !ValidName(name) || !versRe.MatchString(vers) {
			return httpx.BadRequest("not a crate name and version")
		}
		audit.Noted(r.Context(), map[bool]string{true: audit.Yank, false: audit.Unyank}[yanked], name, vers)
		errMissing := errors.New("missing")
		err := cm.env.Repo.Update(r.Context(), Canonical(name), func(old []byte) ([]byte, error) {
			v, err := parseHosted(old)
			if err != nil {
				return nil, err
			}
			h := v.(*hostedCrate)
			for i := range h.Versions {
				if h.Versions[i].Vers == vers {
					if h.Versions[i].Yanked == yanked {
						return old, nil
					}
					h.Versions[i].Yanked = yanked
					return json.Marshal(h)
				}
			}
			return nil, errMissing
		})
		if errors.Is(err, errMissing) {
			return httpx.NewError(http.StatusNotFound, fmt.Sprintf("%s %s is not published here", name, vers))
		}
		if err != nil {
			return err
		}
		return httpx.WriteJSON(w, http.StatusOK, map[string]bool{"ok": true})
	}
}

// sha256Of is the hex sha256 of r's bytes.
func sha256Of(r io.Reader) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
