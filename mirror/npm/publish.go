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

	"github.com/mirror-proxy/mirror-proxy/audit"
	"github.com/mirror-proxy/mirror-proxy/fetch"
	"github.com/mirror-proxy/mirror-proxy/hosted"
	"github.com/mirror-proxy/mirror-proxy/httpx"
	"github.com/mirror-proxy/mirror-proxy/mirror"
	"github.com/mirror-proxy/mirror-proxy/policy"
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

// hostedIndex is the index object of a hosted package: a packument, and
// the record of every version ever published.
type hostedIndex struct {
	Name     string                     `json:"name"`
	DistTags map[string]string          `json:"dist-tags"`
	Versions map[string]json.RawMessage `json:"versions"`
	Time     map[string]string          `json:"time"`
	// Published holds every version published here, with its tarball,
	// and keeps it after an unpublish (a tombstone): as on npmjs.com, a
	// version number is never used again.
	Published map[string]publishedTarball `json:"published,omitempty"`
}

// publishedTarball is one version's tarball as stored.
type publishedTarball struct {
	File      string `json:"file"`
	Path      string `json:"path"` // content-addressed: tarballs/<name>/<sha256>/<file>
	Integrity string `json:"integrity"`
}

func parseIndex(b []byte, name string) (*hostedIndex, error) {
	x := &hostedIndex{Name: name, DistTags: map[string]string{}, Versions: map[string]json.RawMessage{}, Time: map[string]string{},
		Published: map[string]publishedTarball{}}
	if len(b) > 0 {
		if err := json.Unmarshal(b, x); err != nil {
			return nil, fmt.Errorf("index of %s is damaged: %w", name, err)
		}
	}
	// Indexes written before Published existed: their live versions are
	// recorded from their manifests, stored under the name-addressed path.
	for v, raw := range x.Versions {
		if _, ok := x.Published[v]; !ok {
			var m struct {
				Dist struct {
					Integrity string `json:"integrity"`
				} `json:"dist"`
			}
			_ = json.Unmarshal(raw, &m)
			file := tarballFile(name, v)
			x.Published[v] = publishedTarball{File: file, Path: "tarballs/" + name + "/" + file, Integrity: m.Dist.Integrity}
		}
	}
	return x, nil
}

// tarballPathOf is where file of name is stored (its path in the index),
// ok false when no version of the index has that file.
func (x *hostedIndex) tarballPathOf(file string) (string, bool) {
	for _, p := range x.Published {
		if p.File == file {
			return p.Path, true
		}
	}
	return "", false
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

// tarballPath is where a published tarball is stored: content-addressed,
// so that racing publishes of one version with other bytes never share an
// object.
func tarballPath(name, sha256, file string) string {
	return "tarballs/" + name + "/" + sha256 + "/" + file
}

// tarballFile is the file name npm gives name@version's tarball.
func tarballFile(name, version string) string {
	base := name
	if i := strings.IndexByte(name, '/'); i >= 0 {
		base = name[i+1:]
	}
	return base + "-" + version + ".tgz"
}

var errPublished = errors.New("published")

// versionRe is a semantic version as the npm registry takes one (semver
// 2.0.0, at most 100 characters: it becomes part of a storage key).
var versionRe = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)

// maxManifest bounds one version's manifest as stored (its README among
// it): the index holds every version's.
const maxManifest = 1 << 20

// newNameProblem is why npm would refuse name for a new package
// (validate-npm-package-name's rules for new packages), or "".
func newNameProblem(name string) string {
	base := name
	if i := strings.IndexByte(name, '/'); i >= 0 {
		base = name[i+1:]
	}
	switch {
	case strings.ToLower(name) != name:
		return "new package names must be lower case"
	case strings.ContainsAny(name, "~'!()*"):
		return "package names may not contain special characters (~'!()*)"
	case base == "node_modules" || base == "favicon.ico":
		return base + " is not a valid package name"
	case !strings.HasPrefix(name, "@") && nodeBuiltins[name]:
		return name + " is a Node.js core module name"
	}
	return ""
}

// nodeBuiltins are Node.js's core modules (node 20), which npm refuses as
// names of new unscoped packages.
var nodeBuiltins = map[string]bool{}

func init() {
	for _, m := range strings.Fields(`assert async_hooks buffer child_process cluster console constants crypto dgram
		diagnostics_channel dns domain events fs http http2 https inspector module net os path perf_hooks process
		punycode querystring readline repl stream string_decoder sys timers tls trace_events tty url util v8 vm wasi
		worker_threads zlib`) {
		nodeBuiltins[m] = true
	}
}

// publish takes `npm publish`'s document: one new version and its tarball.
func (nm *npmMirror) publish(w http.ResponseWriter, r *http.Request) error {
	n, err := name(r)
	if err != nil {
		return httpx.BadRequest("%v", err)
	}
	body, err := nm.env.Uploads.Body(w, r)
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
		return httpx.BadRequest("the publish request is not a JSON packument: %v", err)
	}
	if doc.Name != n {
		return httpx.BadRequest("the document publishes %s, the URL names %s", httpx.QuoteName(doc.Name), httpx.QuoteName(n))
	}
	if len(doc.Versions) != 1 || len(doc.Attachments) != 1 {
		return httpx.BadRequest("a publish carries exactly one version and its tarball (got %d versions, %d attachments)", len(doc.Versions), len(doc.Attachments))
	}
	var version string
	var manifest map[string]json.RawMessage
	for v, raw := range doc.Versions {
		version = v
		if err := json.Unmarshal(raw, &manifest); err != nil {
			return httpx.BadRequest("version %s is not an object", httpx.QuoteName(v))
		}
	}
	if !versionRe.MatchString(version) {
		return httpx.BadRequest("invalid version %s: not a semantic version", httpx.QuoteName(version))
	}
	audit.Noted(r.Context(), audit.Publish, n, version)
	var ids struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	}
	_ = json.Unmarshal(doc.Versions[version], &ids)
	if ids.Name != n || ids.Version != version {
		return httpx.BadRequest("the manifest publishes %s@%s under %s@%s", httpx.QuoteName(ids.Name), httpx.QuoteName(ids.Version), httpx.QuoteName(n), httpx.QuoteName(version))
	}
	file := tarballFile(n, version)
	att, ok := doc.Attachments[n+"-"+version+".tgz"]
	if !ok {
		return httpx.BadRequest("the attachment must be named %s", httpx.QuoteName(n+"-"+version+".tgz"))
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
	tgz, err := hosted.Spool(base64.NewDecoder(base64.StdEncoding, src), nm.env.Uploads.Dir, nm.env.Uploads.Max)
	if errors.Is(err, hosted.ErrTooLarge) {
		return httpx.NewError(http.StatusRequestEntityTooLarge, "tarball larger than UPLOAD_MAX_BYTES")
	}
	if err != nil {
		return httpx.BadRequest("the attachment is not valid base64: %v", err)
	}
	defer tgz.Remove()
	if att.Length > 0 && att.Length != tgz.Size {
		return httpx.BadRequest("the attachment is %d bytes, its length says %d", tgz.Size, att.Length)
	}
	s512, s1, err := digestsOf(tgz)
	if err != nil {
		return err
	}
	if want, err := fetch.SRIDigest(dist.Integrity); err == nil && want.String() != s512.String() && want.String() != s1.String() {
		return httpx.BadRequest("dist.integrity %s does not match the tarball", httpx.QuoteName(dist.Integrity))
	}
	if dist.Shasum != "" && !strings.EqualFold(dist.Shasum, hex.EncodeToString(s1.Value)) {
		return httpx.BadRequest("dist.shasum does not match the tarball")
	}
	if err := fetch.ArchiveCheck("tgz")(tgz, tgz.Size); err != nil {
		return httpx.BadRequest("the tarball is not a gzip tar archive: %v", err)
	}
	integrity := "sha512-" + base64.StdEncoding.EncodeToString(s512.Value)
	ctx := r.Context()
	// A version published before (live or unpublished) is refused before
	// anything is stored, unless this is the same tarball again (a retry).
	x, err := nm.repo.Index(ctx, n)
	if err != nil {
		return err
	}
	idx, err := parseIndex(x.Body, n)
	if err != nil {
		return &httpx.UpstreamError{Status: http.StatusInternalServerError, Msg: err.Error()}
	}
	if len(idx.Versions) == 0 && len(idx.Published) == 0 {
		if why := newNameProblem(n); why != "" {
			return httpx.BadRequest("%s", why)
		}
	}
	if err := idx.sameOrRefused(version, integrity); err != nil {
		return nm.exists(version)
	}
	path := tarballPath(n, tgz.SHA256, file)
	if err := nm.repo.PutSpooled(ctx, path, tgz, "application/octet-stream"); err != nil {
		return err
	}
	// The stored manifest carries the digests of the stored bytes; its
	// long strings (a README) are kept whole.
	d := map[string]any{"integrity": integrity, "shasum": hex.EncodeToString(s1.Value), "tarball": "/" + n + "/-/" + file}
	manifest["dist"], _ = json.Marshal(d)
	manifest["_id"], _ = json.Marshal(n + "@" + version)
	raw, _ := json.Marshal(manifest)
	if raw, err = ls.restore(raw, body, maxManifest); err != nil {
		if errors.Is(err, errTooLong) {
			return httpx.NewError(http.StatusRequestEntityTooLarge, fmt.Sprintf("the manifest of %s is larger than %d bytes", version, maxManifest))
		}
		return httpx.BadRequest("the publish request: %v", err)
	}
	now := time.Now().UTC().Format("2006-01-02T15:04:05.000Z")
	err = nm.repo.Update(ctx, n, func(old []byte) ([]byte, error) {
		idx, err := parseIndex(old, n)
		if err != nil {
			return nil, err
		}
		if _, ok := idx.Published[version]; ok {
			if idx.sameOrRefused(version, integrity) == nil {
				return old, nil // an identical retry: nothing to write
			}
			return nil, errPublished
		}
		idx.Versions[version] = raw
		idx.Published[version] = publishedTarball{File: file, Path: path, Integrity: integrity}
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
	return httpx.WriteJSON(w, http.StatusCreated, map[string]any{"ok": true, "id": n, "rev": "1-" + hex.EncodeToString(s1.Value[:8])})
}

// sameOrRefused: nil when version is not published, or is published live
// with this very tarball (a retry); errPublished when it was published
// with other bytes or unpublished since.
func (x *hostedIndex) sameOrRefused(version, integrity string) error {
	p, ok := x.Published[version]
	if !ok || p.Integrity == integrity && x.Versions[version] != nil {
		return nil
	}
	return errPublished
}

// exists is npm's own refusal, which the client shows as it is: a version
// published with other bytes, or unpublished (its number is not reused).
func (nm *npmMirror) exists(version string) error {
	return httpx.NewError(http.StatusForbidden, fmt.Sprintf("cannot publish over the previously published versions: %s", httpx.Truncate(version, 100)))
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
		return httpx.BadRequest("%v", err)
	}
	var doc struct {
		Versions map[string]json.RawMessage `json:"versions"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<20)).Decode(&doc); err != nil {
		return httpx.BadRequest("the unpublish request is not a JSON packument: %v", err)
	}
	audit.Noted(r.Context(), audit.Delete, n, "")
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
	audit.Noted(r.Context(), audit.Delete, n, strings.Join(removed, " "))
	nm.env.Log.Info("package versions unpublished", "mirror", nm.m.Name, "package", n, "versions", strings.Join(removed, " "))
	return httpx.WriteJSON(w, http.StatusOK, map[string]any{"ok": true})
}

// deleteTarball answers npm unpublish's last step. The tarball stays in
// storage (lock files may name it); its version is gone from the index.
func (nm *npmMirror) deleteTarball(w http.ResponseWriter, r *http.Request) error {
	if n, err := name(r); err == nil {
		audit.Noted(r.Context(), audit.Delete, n, versionOfTarball(n, r.PathValue("file")))
	}
	return httpx.WriteJSON(w, http.StatusOK, map[string]any{"ok": true})
}

// hostedPackument serves the packument of a published package (the full
// document for either Accept: it is small, and npm reads both).
func (nm *npmMirror) hostedPackument(w http.ResponseWriter, r *http.Request, n string) error {
	hp, x, err := nm.hosted(r.Context(), n)
	if err != nil {
		return err
	}
	if len(hp.idx.Versions) == 0 {
		// Claimed by a publish that did not complete, or every version
		// unpublished: as the registry answers for an unpublished package.
		return httpx.NewError(http.StatusNotFound, fmt.Sprintf("%s has no published version", httpx.QuoteName(n)))
	}
	d, err := hp.doc.doc(httpx.BaseURL(r, nm.env.PublicURL, nm.m.Name))
	if err != nil {
		return err
	}
	return fetch.ServeDoc(w, r, d, hvFull, fetch.HostedEntry(x.ModTime))
}

// hostedParsed is a hosted index as requests need it: the index and the
// packument clients get.
type hostedParsed struct {
	idx *hostedIndex
	doc *parsed
}

// hosted is the hosted index of n as requests need it (parsed once per
// stored version).
func (nm *npmMirror) hosted(ctx context.Context, n string) (*hostedParsed, *hosted.Index, error) {
	x, err := nm.repo.Index(ctx, n)
	if err != nil {
		return nil, nil, err
	}
	v, err := x.Parsed(func(b []byte) (any, error) { return hostedParse(b, n, x.ETag) })
	if err != nil {
		return nil, nil, &httpx.UpstreamError{Status: http.StatusInternalServerError, Msg: err.Error()}
	}
	return v.(*hostedParsed), x, nil
}

func hostedParse(b []byte, n, etag string) (any, error) {
	idx, err := parseIndex(b, n)
	if err != nil {
		return nil, err
	}
	doc := map[string]any{"_id": n, "name": n, "dist-tags": idx.DistTags, "versions": idx.Versions, "time": idx.Time,
		"_rev": "1-" + strings.Trim(etag, `"`)}
	body, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	return &hostedParsed{idx: idx, doc: &parsed{body: body}}, nil
}

// hostedTarball serves a published tarball (one of an unpublished
// version too: lock files may name it), found through the index.
func (nm *npmMirror) hostedTarball(w http.ResponseWriter, r *http.Request, n, file string) error {
	hp, _, err := nm.hosted(r.Context(), n)
	if err != nil {
		return err
	}
	path, ok := hp.idx.tarballPathOf(file)
	if !ok {
		return httpx.NewError(http.StatusNotFound, "no such published file")
	}
	if why, v := policy.JudgeHosted(nm.m.Rules, n, versionOfTarball(n, file)); v.Advice != nil {
		if err := nm.env.FileVerdict(w, r, why, v); err != nil {
			return err // known malware of this name and version
		}
	}
	return nm.env.Core.ServeHostedFile(w, r, nm.repo, path)
}

// ownedBy reports whether name is published here.
func (nm *npmMirror) ownedBy(ctx context.Context, n string) (bool, error) {
	return hosted.Owns(ctx, nm.repo, nm.m.URL == "", n)
}
