package npm

import (
	"context"
	"crypto/sha1"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/mirror-proxy/mirror-proxy/fetch"
	"github.com/mirror-proxy/mirror-proxy/hosted"
	"github.com/mirror-proxy/mirror-proxy/mirror"
)

// Hosted npm packages: `npm publish` sends PUT /<name> with the packument
// of the new version and the tarball base64-encoded in _attachments;
// `npm unpublish name@version` sends the packument without the version to
// PUT /<name>/-rev/<rev>, then DELETE of the tarball. A published name is
// owned: its packument and tarballs come only from artifact/<mirror>/.

func (nm *npmMirror) registerHosted(rt mirror.Router) {
	rt.Write(http.MethodPut, "/{a}", nm.publish)
	rt.Write(http.MethodPut, "/{a}/-rev/{rev}", nm.unpublish)
	rt.Write(http.MethodPut, "/{a}/{b}/-rev/{rev}", nm.unpublish)
	rt.Write(http.MethodDelete, "/{a}/-/{file}/-rev/{rev}", nm.deleteTarball)
	rt.Write(http.MethodDelete, "/{a}/{b}/-/{file}/-rev/{rev}", nm.deleteTarball)
}

// hostedIndex is the index object of a hosted package: a packument.
type hostedIndex struct {
	Name     string                     `json:"name"`
	DistTags map[string]string          `json:"dist-tags"`
	Versions map[string]json.RawMessage `json:"versions"`
	Time     map[string]string          `json:"time"`
}

func parseIndex(b []byte, name string) (*hostedIndex, error) {
	x := &hostedIndex{Name: name, DistTags: map[string]string{}, Versions: map[string]json.RawMessage{}, Time: map[string]string{}}
	if len(b) > 0 {
		if err := json.Unmarshal(b, x); err != nil {
			return nil, fmt.Errorf("index of %s is damaged: %w", name, err)
		}
	}
	return x, nil
}

func (x *hostedIndex) marshal() []byte { b, _ := json.Marshal(x); return b }

// latest is the newest version by publish time (what dist-tags.latest
// falls back to when its version is gone).
func (x *hostedIndex) latest() string {
	best, bestT := "", ""
	for v := range x.Versions {
		if t := x.Time[v]; best == "" || t > bestT {
			best, bestT = v, t
		}
	}
	return best
}

func tarballPath(name, file string) string { return "tarballs/" + name + "/" + file }

// tarballFile is the file name npm gives name@version's tarball.
func tarballFile(name, version string) string {
	base := name
	if i := strings.IndexByte(name, '/'); i >= 0 {
		base = name[i+1:]
	}
	return base + "-" + version + ".tgz"
}

var errPublished = errors.New("published")

// versionRe is what a published version may look like (semver's
// characters; it becomes part of a storage key).
var versionRe = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z.+-]{0,99}$`)

// publish takes `npm publish`'s document: one new version and its tarball.
func (nm *npmMirror) publish(w http.ResponseWriter, r *http.Request) error {
	n, err := name(r)
	if err != nil {
		return fetch.BadRequest("%v", err)
	}
	body, err := nm.env.SpoolBody(w, r)
	if err != nil {
		return err
	}
	defer body.Remove()
	ls := newLongStrings(body.Reader(), 64<<10)
	var doc struct {
		Name        string                     `json:"name"`
		DistTags    map[string]string          `json:"dist-tags"`
		Versions    map[string]json.RawMessage `json:"versions"`
		Attachments map[string]struct {
			Data   string `json:"data"`
			Length int64  `json:"length"`
		} `json:"_attachments"`
	}
	if err := json.NewDecoder(ls).Decode(&doc); err != nil {
		return fetch.BadRequest("the publish request is not a JSON packument: %v", err)
	}
	if doc.Name != n {
		return fetch.BadRequest("the document publishes %s, the URL names %s", fetch.QuoteName(doc.Name), fetch.QuoteName(n))
	}
	if len(doc.Versions) != 1 || len(doc.Attachments) != 1 {
		return fetch.BadRequest("a publish carries exactly one version and its tarball (got %d versions, %d attachments)", len(doc.Versions), len(doc.Attachments))
	}
	var version string
	var manifest map[string]json.RawMessage
	for v, raw := range doc.Versions {
		version = v
		if err := json.Unmarshal(raw, &manifest); err != nil {
			return fetch.BadRequest("version %s is not an object", fetch.QuoteName(v))
		}
	}
	if !versionRe.MatchString(version) {
		return fetch.BadRequest("invalid version %s", fetch.QuoteName(version))
	}
	file := tarballFile(n, version)
	att, ok := doc.Attachments[n+"-"+version+".tgz"]
	if !ok {
		return fetch.BadRequest("the attachment must be named %s", fetch.QuoteName(n+"-"+version+".tgz"))
	}
	var dist struct {
		Integrity string `json:"integrity"`
		Shasum    string `json:"shasum"`
	}
	_ = json.Unmarshal(manifest["dist"], &dist)

	// The tarball: decoded from the spool as it streams, hashed, spooled.
	var src io.Reader
	if ls2, ok := ls.long(att.Data); ok {
		src = io.NewSectionReader(body, ls2.Offset, ls2.Length)
	} else {
		src = strings.NewReader(att.Data)
	}
	tgz, err := hosted.Spool(base64.NewDecoder(base64.StdEncoding, src), "", nm.env.UploadMax)
	if errors.Is(err, hosted.ErrTooLarge) {
		return fetch.NewError(http.StatusRequestEntityTooLarge, "tarball larger than UPLOAD_MAX_BYTES")
	}
	if err != nil {
		return fetch.BadRequest("the attachment is not valid base64: %v", err)
	}
	defer tgz.Remove()
	if att.Length > 0 && att.Length != tgz.Size {
		return fetch.BadRequest("the attachment is %d bytes, its length says %d", tgz.Size, att.Length)
	}
	s512, s1, err := digestsOf(tgz)
	if err != nil {
		return err
	}
	if want, err := fetch.SRIDigest(dist.Integrity); err == nil && want.String() != s512.String() && want.String() != s1.String() {
		return fetch.BadRequest("dist.integrity %s does not match the tarball", fetch.QuoteName(dist.Integrity))
	}
	if dist.Shasum != "" && !strings.EqualFold(dist.Shasum, hex.EncodeToString(s1.Value)) {
		return fetch.BadRequest("dist.shasum does not match the tarball")
	}
	if err := fetch.ArchiveCheck("tgz")(tgz, tgz.Size); err != nil {
		return fetch.BadRequest("the tarball is not a gzip tar archive: %v", err)
	}
	ctx := r.Context()
	if x, err := nm.repo.Index(ctx, n); err == nil {
		if idx, err := parseIndex(x.Body, n); err == nil && idx.Versions[version] != nil {
			return nm.exists(version)
		}
	}
	if err := nm.repo.PutFile(ctx, tarballPath(n, file), tgz.Reader(), tgz.Size, "application/octet-stream"); err != nil {
		return err
	}
	// The stored manifest carries the digests of the stored bytes.
	d := map[string]any{"integrity": "sha512-" + base64.StdEncoding.EncodeToString(s512.Value),
		"shasum": hex.EncodeToString(s1.Value), "tarball": "/" + n + "/-/" + file}
	manifest["dist"], _ = json.Marshal(d)
	manifest["_id"], _ = json.Marshal(n + "@" + version)
	raw, _ := json.Marshal(manifest)
	now := time.Now().UTC().Format("2006-01-02T15:04:05.000Z")
	err = nm.repo.Update(ctx, n, func(old []byte) ([]byte, error) {
		idx, err := parseIndex(old, n)
		if err != nil {
			return nil, err
		}
		if idx.Versions[version] != nil {
			return nil, errPublished
		}
		idx.Versions[version] = raw
		idx.Time[version], idx.Time["modified"] = now, now
		if idx.Time["created"] == "" {
			idx.Time["created"] = now
		}
		for tag, v := range doc.DistTags {
			if v == version && tag != "" && len(tag) < 100 {
				idx.DistTags[tag] = v
			}
		}
		if idx.DistTags["latest"] == "" {
			idx.DistTags["latest"] = version
		}
		return idx.marshal(), nil
	})
	if errors.Is(err, errPublished) {
		return nm.exists(version)
	}
	if err != nil {
		return err
	}
	nm.env.Log.Info("package published", "mirror", nm.m.Name, "package", n, "version", version, "bytes", tgz.Size)
	return fetch.WriteJSON(w, http.StatusCreated, map[string]any{"ok": true, "id": n, "rev": "1-" + hex.EncodeToString(s1.Value[:8])})
}

// exists is npm's own refusal, which the client shows as it is.
func (nm *npmMirror) exists(version string) error {
	return fetch.NewError(http.StatusForbidden, fmt.Sprintf("cannot publish over the previously published versions: %s", fetch.Truncate(version, 100)))
}

func digestsOf(f *hosted.Spooled) (s512, s1 fetch.Digest, err error) {
	h512, h1 := sha512.New(), sha1.New()
	if _, err := io.Copy(io.MultiWriter(h512, h1), f.Reader()); err != nil {
		return s512, s1, err
	}
	return fetch.Digest{Alg: "sha512", Value: h512.Sum(nil)}, fetch.Digest{Alg: "sha1", Value: h1.Sum(nil)}, nil
}

// unpublish takes the packument npm unpublish sends back without the
// versions it removes; only removals are taken from it.
func (nm *npmMirror) unpublish(w http.ResponseWriter, r *http.Request) error {
	n, err := name(r)
	if err != nil {
		return fetch.BadRequest("%v", err)
	}
	var doc struct {
		Versions map[string]json.RawMessage `json:"versions"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<20)).Decode(&doc); err != nil {
		return fetch.BadRequest("the unpublish request is not a JSON packument: %v", err)
	}
	var removed []string
	err = nm.repo.Update(r.Context(), n, func(old []byte) ([]byte, error) {
		idx, err := parseIndex(old, n)
		if err != nil {
			return nil, err
		}
		removed = removed[:0]
		for v := range idx.Versions {
			if _, keep := doc.Versions[v]; !keep {
				delete(idx.Versions, v)
				delete(idx.Time, v)
				removed = append(removed, v)
			}
		}
		for tag, v := range idx.DistTags {
			if idx.Versions[v] == nil {
				delete(idx.DistTags, tag)
			}
		}
		if l := idx.latest(); l != "" && idx.DistTags["latest"] == "" {
			idx.DistTags["latest"] = l
		}
		idx.Time["modified"] = time.Now().UTC().Format("2006-01-02T15:04:05.000Z")
		return idx.marshal(), nil
	})
	if err != nil {
		return err
	}
	sort.Strings(removed)
	nm.env.Log.Info("package versions unpublished", "mirror", nm.m.Name, "package", n, "versions", strings.Join(removed, " "))
	return fetch.WriteJSON(w, http.StatusOK, map[string]any{"ok": true})
}

// deleteTarball answers npm unpublish's last step. The tarball stays in
// storage (lock files may name it); its version is gone from the index.
func (nm *npmMirror) deleteTarball(w http.ResponseWriter, r *http.Request) error {
	return fetch.WriteJSON(w, http.StatusOK, map[string]any{"ok": true})
}

// hostedPackument serves the packument of a published package (the full
// document for either Accept: it is small, and npm reads both).
func (nm *npmMirror) hostedPackument(w http.ResponseWriter, r *http.Request, n string) error {
	x, err := nm.repo.Index(r.Context(), n)
	if err != nil {
		return err
	}
	v, err := x.Parsed(func(b []byte) (any, error) {
		idx, err := parseIndex(b, n)
		if err != nil {
			return nil, err
		}
		doc := map[string]any{"_id": n, "name": n, "dist-tags": idx.DistTags, "versions": idx.Versions, "time": idx.Time,
			"_rev": "1-" + strings.Trim(x.ETag, `"`)}
		body, err := json.Marshal(doc)
		if err != nil {
			return nil, err
		}
		return &parsed{body: body}, nil
	})
	if err != nil {
		return &fetch.UpstreamError{Status: http.StatusInternalServerError, Msg: err.Error()}
	}
	d, err := v.(*parsed).doc(fetch.BaseURL(r, nm.env.PublicURL, nm.m.Name))
	if err != nil {
		return err
	}
	return fetch.ServeDoc(w, r, d, hvFull, fetch.HostedEntry(x.ModTime))
}

// hostedTarball serves a published tarball.
func (nm *npmMirror) hostedTarball(w http.ResponseWriter, r *http.Request, n, file string) error {
	return nm.env.Core.ServeHostedFile(w, r, nm.repo, tarballPath(n, file))
}

// ownedBy reports whether name is published here.
func (nm *npmMirror) ownedBy(ctx context.Context, n string) (bool, error) {
	return fetch.Owns(ctx, nm.repo, nm.m.URL == "", n)
}
