package maven

import (
	"context"
	"crypto/sha512"
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
	"github.com/mirror-proxy/mirror-proxy/httpx"
)

// Hosting with mvn deploy: each file is a PUT (then its checksums, then
// maven-metadata.xml and its checksums), with a write token (Basic, after
// the 401 challenge wagon expects). Files are stored by content (sha256);
// the artifact's index object (group:artifact) is the one commit point,
// so concurrent deploys of different versions, through any replica, all
// land. A release's files are immutable: a second deploy of a file with
// other bytes is a 409 (identical bytes: 200); -SNAPSHOT versions take
// timestamped files, one set per deploy. A checksum PUT is checked against
// the stored file (409 on mismatch). The maven-metadata.xml a client
// uploads is checked as XML and otherwise ignored: the proxy generates the
// artifact's and each snapshot version's metadata from its index, as
// Nexus rebuilds its own, so no deploy can overwrite another's versions.
// A published group:artifact is owned: none of its paths comes from the
// upstream again.

// hostedFile is one deployed file.
type hostedFile struct {
	Path string            `json:"path"` // repository path of its bytes
	Size int64             `json:"size"`
	Sums map[string]string `json:"sums"` // md5, sha1, sha256, sha512
	Time time.Time         `json:"time"`
}

type hostedVersion struct {
	Files map[string]hostedFile `json:"files"` // by file name
	Time  time.Time             `json:"time"`  // first deploy
}

type hostedArtifact struct {
	Versions map[string]*hostedVersion `json:"versions"`
}

func parseHosted(b []byte) (any, error) {
	h := &hostedArtifact{Versions: map[string]*hostedVersion{}}
	if len(b) == 0 {
		return h, nil
	}
	if err := json.Unmarshal(b, h); err != nil {
		return nil, err
	}
	if h.Versions == nil {
		h.Versions = map[string]*hostedVersion{}
	}
	return h, nil
}

// coords are a path's group, artifact, version and file name; file "" for
// an artifact-level path (maven-metadata.xml of the artifact).
type coords struct{ group, artifact, version, file string }

func (c coords) name() string { return c.group + ":" + c.artifact }

// candidates are the group:artifact names a path may belong to: the
// artifact level (.../<artifact>/maven-metadata.xml) and the file level
// (.../<artifact>/<version>/<file>).
func candidates(path string) []coords {
	segs := strings.Split(path, "/")
	var out []coords
	if n := len(segs); n >= 3 {
		out = append(out, coords{group: strings.Join(segs[:n-2], "."), artifact: segs[n-2], file: segs[n-1]})
	}
	if n := len(segs); n >= 4 {
		out = append(out, coords{group: strings.Join(segs[:n-3], "."), artifact: segs[n-3], version: segs[n-2], file: segs[n-1]})
	}
	return out
}

// owner is the coordinates of path under a group:artifact published here
// (ok false: none).
func (mm *mavenMirror) owner(ctx context.Context, path string) (coords, bool, error) {
	if mm.env.Repo == nil {
		return coords{}, false, nil
	}
	n, err := mm.env.Repo.Names(ctx)
	if err != nil {
		return coords{}, false, err
	}
	// The file level first: a version directory is more specific.
	cs := candidates(path)
	for i := len(cs) - 1; i >= 0; i-- {
		if n.Set[cs[i].name()] {
			return cs[i], true, nil
		}
	}
	return coords{}, false, nil
}

func (mm *mavenMirror) hostedArtifact(ctx context.Context, name string) (*hostedArtifact, error) {
	x, err := mm.env.Repo.Index(ctx, name)
	if err != nil {
		return nil, err
	}
	v, err := x.Parsed(parseHosted)
	if err != nil {
		return nil, err
	}
	return v.(*hostedArtifact), nil
}

// serveHosted answers a path of a published artifact.
func (mm *mavenMirror) serveHosted(w http.ResponseWriter, r *http.Request, p Path, c coords) error {
	h, err := mm.hostedArtifact(r.Context(), c.name())
	if err != nil {
		return err
	}
	file, alg := c.file, ""
	if p.Kind == "checksum" {
		file, alg = strings.TrimSuffix(c.file, "."+p.Alg), p.Alg
	}
	var body []byte
	switch {
	case file == "maven-metadata.xml" && c.version == "":
		body = artifactMetadata(c, h)
	case file == "maven-metadata.xml":
		v, ok := h.Versions[c.version]
		if !ok || !strings.HasSuffix(c.version, "-SNAPSHOT") {
			return httpx.NewError(http.StatusNotFound, "no such metadata")
		}
		body = snapshotMetadata(c, v)
	default:
		v, ok := h.Versions[c.version]
		if !ok {
			return httpx.NewError(http.StatusNotFound, fmt.Sprintf("%s %s is not deployed here", c.name(), c.version))
		}
		f, ok := v.Files[file]
		if !ok {
			return httpx.NewError(http.StatusNotFound, fmt.Sprintf("%s is not deployed here", file))
		}
		if alg != "" {
			return httpx.WriteBlob(w, http.StatusOK, "text/plain", []byte(f.Sums[alg]))
		}
		w.Header().Set("Last-Modified", f.Time.UTC().Format(http.TimeFormat))
		return mm.env.Core.ServeHostedFile(w, r, mm.env.Repo, f.Path)
	}
	if alg != "" {
		hh := newHash(alg)
		hh.Write(body)
		return httpx.WriteBlob(w, http.StatusOK, "text/plain", []byte(hex.EncodeToString(hh.Sum(nil))))
	}
	return httpx.WriteBlob(w, http.StatusOK, "text/xml", body)
}

// versionsByTime are h's versions, in the order they were first deployed.
func versionsByTime(h *hostedArtifact) []string {
	var vs []string
	for v := range h.Versions {
		vs = append(vs, v)
	}
	sort.Slice(vs, func(i, j int) bool {
		ti, tj := h.Versions[vs[i]].Time, h.Versions[vs[j]].Time
		if !ti.Equal(tj) {
			return ti.Before(tj)
		}
		return vs[i] < vs[j]
	})
	return vs
}

// artifactMetadata is the artifact's maven-metadata.xml: every deployed
// version (in deploy order), the latest, and the latest release.
func artifactMetadata(c coords, h *hostedArtifact) []byte {
	vs := versionsByTime(h)
	latest, release := "", ""
	var updated time.Time
	var b strings.Builder
	for _, v := range vs {
		latest = v
		if !strings.HasSuffix(v, "-SNAPSHOT") {
			release = v
		}
		for _, f := range h.Versions[v].Files {
			if f.Time.After(updated) {
				updated = f.Time
			}
		}
		fmt.Fprintf(&b, "      <version>%s</version>\n", xmlText(v))
	}
	out := fmt.Sprintf("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<metadata>\n  <groupId>%s</groupId>\n  <artifactId>%s</artifactId>\n  <versioning>\n",
		xmlText(c.group), xmlText(c.artifact))
	if latest != "" {
		out += "    <latest>" + xmlText(latest) + "</latest>\n"
	}
	if release != "" {
		out += "    <release>" + xmlText(release) + "</release>\n"
	}
	out += "    <versions>\n" + b.String() + "    </versions>\n    <lastUpdated>" + updated.UTC().Format("20060102150405") + "</lastUpdated>\n  </versioning>\n</metadata>\n"
	return []byte(out)
}

// snapshotFileRe reads a timestamped snapshot file name's parts after
// "<artifact>-<base version>-": timestamp, build number, the rest.
var snapshotFileRe = regexp.MustCompile(`^(\d{8}\.\d{6})-(\d+)((?:-[^.]+)?\..+)$`)

// snapshotMetadata is a -SNAPSHOT version's maven-metadata.xml: its
// newest build and, per classifier and extension, the newest file.
func snapshotMetadata(c coords, v *hostedVersion) []byte {
	base := strings.TrimSuffix(c.version, "-SNAPSHOT")
	prefix := c.artifact + "-" + base + "-"
	type build struct {
		ts    string
		num   int
		value string
	}
	latest := build{}
	newest := map[string]build{} // "classifier|extension" → newest
	var updated time.Time
	for name, f := range v.Files {
		m := snapshotFileRe.FindStringSubmatch(strings.TrimPrefix(name, prefix))
		if !strings.HasPrefix(name, prefix) || m == nil {
			continue
		}
		var num int
		fmt.Sscanf(m[2], "%d", &num)
		b := build{m[1], num, base + "-" + m[1] + "-" + m[2]}
		classifier, ext := "", strings.TrimPrefix(m[3], ".")
		if strings.HasPrefix(m[3], "-") {
			rest := m[3][1:]
			i := strings.IndexByte(rest, '.')
			classifier, ext = rest[:i], rest[i+1:]
		}
		if b.num > latest.num {
			latest = b
		}
		k := classifier + "|" + ext
		if b.num >= newest[k].num {
			newest[k] = b
		}
		if f.Time.After(updated) {
			updated = f.Time
		}
	}
	var keys []string
	for k := range newest {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sv strings.Builder
	for _, k := range keys {
		classifier, ext, _ := strings.Cut(k, "|")
		sv.WriteString("      <snapshotVersion>\n")
		if classifier != "" {
			sv.WriteString("        <classifier>" + xmlText(classifier) + "</classifier>\n")
		}
		fmt.Fprintf(&sv, "        <extension>%s</extension>\n        <value>%s</value>\n        <updated>%s</updated>\n      </snapshotVersion>\n",
			xmlText(ext), xmlText(newest[k].value), strings.ReplaceAll(newest[k].ts, ".", ""))
	}
	out := fmt.Sprintf("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<metadata modelVersion=\"1.1.0\">\n  <groupId>%s</groupId>\n  <artifactId>%s</artifactId>\n  <version>%s</version>\n  <versioning>\n",
		xmlText(c.group), xmlText(c.artifact), xmlText(c.version))
	if latest.ts != "" {
		out += fmt.Sprintf("    <snapshot>\n      <timestamp>%s</timestamp>\n      <buildNumber>%d</buildNumber>\n    </snapshot>\n", latest.ts, latest.num)
	}
	out += "    <lastUpdated>" + updated.UTC().Format("20060102150405") + "</lastUpdated>\n    <snapshotVersions>\n" + sv.String() + "    </snapshotVersions>\n  </versioning>\n</metadata>\n"
	return []byte(out)
}

// xmlText escapes s for XML text (names are checked path segments; this
// is the belt to those braces).
func xmlText(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

var errReleaseTaken = errors.New("release file taken")

// deploy takes a PUT of mvn deploy.
func (mm *mavenMirror) deploy(w http.ResponseWriter, r *http.Request) error {
	if mm.env.Repo == nil {
		return httpx.NewError(http.StatusMethodNotAllowed, "this repository does not take deploys (set \"hosted\": true)")
	}
	p, err := ParsePath(r.PathValue("rest"))
	if err != nil {
		return httpx.BadRequest("%v", err)
	}
	cs := candidates(p.Path)
	if p.File == "maven-metadata.xml" || strings.HasPrefix(p.File, "maven-metadata.xml.") {
		// Checked and ignored: the proxy makes its own.
		sp, err := mm.env.Uploads.Body(w, r)
		if err != nil {
			return err
		}
		defer sp.Remove()
		if p.Kind == "metadata" {
			if err := xmlCheck(sp.File, sp.Size); err != nil {
				return httpx.BadRequest("maven-metadata.xml: %v", err)
			}
		}
		w.WriteHeader(http.StatusCreated)
		return nil
	}
	if len(cs) < 2 {
		return httpx.BadRequest("deploy to <group path>/<artifact>/<version>/<file>")
	}
	c := cs[1]
	audit.Noted(r.Context(), audit.Publish, c.name(), c.version)
	if p.Kind == "checksum" {
		return mm.deployChecksum(w, r, p, c)
	}
	if !strings.HasPrefix(c.file, c.artifact+"-") {
		return httpx.BadRequest("%s is not a file of artifact %s (its name must start with %s-)", c.file, c.artifact, c.artifact)
	}
	sp, err := mm.env.Uploads.Body(w, r)
	if err != nil {
		return err
	}
	defer sp.Remove()
	h512 := sha512.New()
	if _, err := io.Copy(h512, sp.Reader()); err != nil {
		return err
	}
	f := hostedFile{Path: "files/" + sp.SHA256, Size: sp.Size, Time: time.Now().UTC(),
		Sums: map[string]string{"md5": sp.MD5, "sha1": sp.SHA1, "sha256": sp.SHA256, "sha512": hex.EncodeToString(h512.Sum(nil))}}
	snapshot := strings.HasSuffix(c.version, "-SNAPSHOT")
	check := func(h *hostedArtifact) error {
		if v, ok := h.Versions[c.version]; ok && !snapshot {
			if old, ok := v.Files[c.file]; ok {
				if old.Sums["sha256"] == f.Sums["sha256"] {
					return errIdenticalDeploy
				}
				return errReleaseTaken
			}
		}
		return nil
	}
	// Refused before anything is stored when known already.
	if h, err := mm.hostedArtifact(r.Context(), c.name()); err != nil {
		return err
	} else if err := check(h); err != nil {
		return deployAnswer(w, c, err)
	}
	if err := mm.env.Repo.PutSpooled(r.Context(), f.Path, sp, "application/octet-stream"); err != nil {
		return err
	}
	err = mm.env.Repo.Update(r.Context(), c.name(), func(old []byte) ([]byte, error) {
		v, err := parseHosted(old)
		if err != nil {
			return nil, err
		}
		h := v.(*hostedArtifact)
		if err := check(h); err != nil {
			if errors.Is(err, errIdenticalDeploy) {
				return old, nil
			}
			return nil, err
		}
		ver, ok := h.Versions[c.version]
		if !ok {
			ver = &hostedVersion{Files: map[string]hostedFile{}, Time: f.Time}
			h.Versions[c.version] = ver
		}
		ver.Files[c.file] = f
		return json.Marshal(h)
	})
	return deployAnswer(w, c, err)
}

var errIdenticalDeploy = errors.New("identical")

func deployAnswer(w http.ResponseWriter, c coords, err error) error {
	switch {
	case err == nil:
		w.WriteHeader(http.StatusCreated)
		return nil
	case errors.Is(err, errIdenticalDeploy):
		w.WriteHeader(http.StatusOK)
		return nil
	case errors.Is(err, errReleaseTaken):
		return httpx.NewError(http.StatusConflict, fmt.Sprintf("%s:%s is a release already deployed with other contents of %s; releases are immutable", c.name(), c.version, c.file))
	}
	return err
}

// deployChecksum checks a checksum PUT against the stored file.
func (mm *mavenMirror) deployChecksum(w http.ResponseWriter, r *http.Request, p Path, c coords) error {
	b, err := io.ReadAll(io.LimitReader(r.Body, 1024))
	if err != nil {
		return httpx.BadRequest("the checksum was not received: %v", err)
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return httpx.BadRequest("an empty checksum")
	}
	h, err := mm.hostedArtifact(r.Context(), c.name())
	if err != nil {
		return err
	}
	file := strings.TrimSuffix(c.file, "."+p.Alg)
	v, ok := h.Versions[c.version]
	if !ok {
		return httpx.NewError(http.StatusConflict, fmt.Sprintf("%s: %s is not deployed", p.File, file))
	}
	f, ok := v.Files[file]
	if !ok {
		return httpx.NewError(http.StatusConflict, fmt.Sprintf("%s: %s is not deployed", p.File, file))
	}
	if !strings.EqualFold(fields[0], f.Sums[p.Alg]) {
		return httpx.NewError(http.StatusConflict, fmt.Sprintf("%s does not match the stored %s (%s %s)", p.File, file, p.Alg, f.Sums[p.Alg]))
	}
	w.WriteHeader(http.StatusCreated)
	return nil
}
