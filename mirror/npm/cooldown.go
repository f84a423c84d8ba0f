package npm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/mirror-proxy/mirror-proxy/fetch"
	"github.com/mirror-proxy/mirror-proxy/httpx"
	"github.com/mirror-proxy/mirror-proxy/policy"
)

// Policies: versions published (the full packument's "time") less than
// the mirror's cooldown ago, and denied versions, are left out of both
// representations (a package outside the allow list, or denied whole, is
// a 404 that says so);
// dist-tags that named them are dropped, and "latest" falls back to the
// newest version old enough; their tarballs answer 403 with the date. The
// abbreviated packument has no times: the full one decides.

// filters reports whether the packuments of n are filtered for r.
func (nm *npmMirror) filters(r *http.Request, n string) bool {
	_, snap := policy.Snapshot(r)
	return snap || nm.m.Cooldown.Active(n) || nm.m.Rules.Filters(n)
}

// judge says why a version is not served ("" : it is), and the
// policies' verdict (see policy.Judge).
func (nm *npmMirror) judge(r *http.Request, n, version string, published, now time.Time) (string, policy.Verdict) {
	return policy.Judge(r, nm.m.Cooldown, nm.m.Rules, policy.Judged{Name: n, What: n + "@" + version,
		Published: published, Versions: []string{version}}, now)
}

// times loads the publish times of a package (from the full packument).
func (nm *npmMirror) times(ctx context.Context, n string) (fetch.MetaResult, map[string]time.Time, error) {
	res, p, err := nm.load(ctx, n, false)
	if err != nil {
		return res, nil, err
	}
	return res, p.pkg.Times, nil
}

// cooled is the packument p (of entry res, abbreviated or not) as the
// cooldown lets clients see it. Outside a snapshot, the response w gets
// is marked replayable until the next held-back version comes of age
// (fetch.ReplayableFiltered): it comes from res and the full packument.
func (nm *npmMirror) cooled(w http.ResponseWriter, r *http.Request, n string, abbreviated bool, res fetch.MetaResult, p *parsed) (*parsed, error) {
	full, times, err := nm.times(r.Context(), n)
	if err != nil {
		return nil, err
	}
	key := fetch.DerivedKey{ID: res.Entry.ID(), ID2: full.Entry.ID(), Day: policy.SnapshotDay(r)}
	if nm.repo == nil {
		defer nm.derived.Replayable(w, r, key, nm.m.TTL, fetch.ReplayFrom{Key: nm.packumentKey(n, abbreviated), Res: res},
			fetch.ReplayFrom{Key: nm.packumentKey(n, false), Res: full})
	}
	if v, ok := nm.derived.Lookup(key, time.Now()); ok {
		return v.(*parsed), nil
	}
	v := nm.derived.Get(key, time.Now(), func() (any, policy.Window) {
		var w policy.Window
		var doc map[string]json.RawMessage
		if json.Unmarshal(p.body, &doc) != nil {
			return p, w
		}
		var versions map[string]json.RawMessage
		_ = json.Unmarshal(doc["versions"], &versions)
		var tags map[string]string
		_ = json.Unmarshal(doc["dist-tags"], &tags)
		var docTimes map[string]json.RawMessage
		_ = json.Unmarshal(doc["time"], &docTimes)
		now := time.Now()
		newest, newestT := "", time.Time{}
		blocked := map[string]bool{}
		for ver := range versions {
			why, verdict := nm.judge(r, n, ver, times[ver], now)
			w.Add(verdict)
			if verdict.Advisory {
				// Kept, deprecated with the advisories: npm picks another
				// version for a range when one satisfies it, and a pinned
				// install gets the tarball's 403, which names them.
				versions[ver] = deprecated(versions[ver], why)
				blocked[ver] = true
				continue
			}
			if why != "" {
				delete(versions, ver)
				delete(docTimes, ver)
				continue
			}
			if t := times[ver]; newest == "" || t.After(newestT) {
				newest, newestT = ver, t
			}
		}
		for tag, ver := range tags {
			if _, ok := versions[ver]; !ok || blocked[ver] {
				delete(tags, tag)
			}
		}
		if _, ok := tags["latest"]; !ok && newest != "" {
			tags["latest"] = newest
		}
		doc["versions"], _ = json.Marshal(versions)
		doc["dist-tags"], _ = json.Marshal(tags)
		if docTimes != nil {
			doc["time"], _ = json.Marshal(docTimes)
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(doc)
		body := bytes.TrimRight(buf.Bytes(), "\n")
		pkg, err := Parse(body)
		if err != nil {
			return p, w
		}
		return &parsed{pkg: pkg, body: body}, w
	})
	return v.(*parsed), nil
}

// deprecated is a version's manifest with "deprecated" set to why (npm
// warns with it, and avoids the version when another satisfies a range).
func deprecated(manifest json.RawMessage, why string) json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(manifest, &m) != nil {
		return manifest
	}
	m["deprecated"], _ = json.Marshal(why)
	b, err := json.Marshal(m)
	if err != nil {
		return manifest
	}
	return b
}

// heldBack refuses the tarball of a version a policy hides. It fails
// closed: a tarball the packument no longer lists (the upstream took the
// version down) is judged by the version its file name gives, with no
// publish time (cooldownUnknown decides), and one that cannot be judged
// at all is refused; so is every tarball while the packument cannot be
// read, even one in storage.
func (nm *npmMirror) heldBack(w http.ResponseWriter, r *http.Request, n, file string) error {
	_, p, err := nm.load(r.Context(), n, false)
	if err != nil {
		return err
	}
	version, published := "", time.Time{}
	if d, ok := p.pkg.Find(file); ok {
		version, published = d.Version, p.pkg.Times[d.Version]
	} else if version = versionOfTarball(n, file); version == "" {
		return httpx.NewError(http.StatusForbidden, fmt.Sprintf("%s is not a tarball of %s in the mirrored metadata, so the mirror's policies cannot judge it", httpx.QuoteName(file), n))
	}
	why, v := nm.judge(r, n, version, published, time.Now())
	return nm.env.FileVerdict(w, r, why, v)
}

// versionOfTarball is the version a tarball's conventional file name
// (<name without scope>-<version>.tgz) gives, or "".
func versionOfTarball(n, file string) string {
	base := n[strings.LastIndexByte(n, '/')+1:]
	v, ok := strings.CutPrefix(strings.TrimSuffix(file, ".tgz"), base+"-")
	if !ok || !versionRe.MatchString(v) {
		return ""
	}
	return v
}
