package npm

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/mirror-proxy/mirror-proxy/fetch"
	"github.com/mirror-proxy/mirror-proxy/policy"
)

// Cooldown: versions published (the full packument's "time") less than
// the mirror's cooldown ago are left out of both representations;
// dist-tags that named them are dropped, and "latest" falls back to the
// newest version old enough; their tarballs answer 403 with the date. The
// abbreviated packument has no times: the full one decides.

type cooledKey struct{ doc, full uint64 }

// times loads the publish times of a package (from the full packument).
func (nm *npmMirror) times(ctx context.Context, n string) (fetch.MetaResult, map[string]time.Time, error) {
	res, p, err := nm.load(ctx, n, false)
	if err != nil {
		return res, nil, err
	}
	return res, p.times, nil
}

// cooled is the packument p (of entry res) as the cooldown lets clients
// see it.
func (nm *npmMirror) cooled(ctx context.Context, n string, res fetch.MetaResult, p *parsed) (*parsed, error) {
	full, times, err := nm.times(ctx, n)
	if err != nil {
		return nil, err
	}
	v := nm.derived.Get(cooledKey{res.Entry.ID(), full.Entry.ID()}, time.Now(), func() (any, policy.Window) {
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
		for ver := range versions {
			verdict := nm.m.Cooldown.Judge(times[ver], now)
			w.Add(verdict)
			if verdict.Hidden {
				delete(versions, ver)
				delete(docTimes, ver)
				continue
			}
			if t := times[ver]; newest == "" || t.After(newestT) {
				newest, newestT = ver, t
			}
		}
		for tag, ver := range tags {
			if _, ok := versions[ver]; !ok {
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

// heldBack refuses the tarball of a version the cooldown hides.
func (nm *npmMirror) heldBack(ctx context.Context, n, file string) error {
	_, p, err := nm.load(ctx, n, false)
	if err != nil {
		return nil // the download path reports what is wrong
	}
	d, ok := p.pkg.Find(file)
	if !ok {
		return nil
	}
	if v := nm.m.Cooldown.Judge(p.times[d.Version], time.Now()); v.Hidden {
		return fetch.NewError(http.StatusForbidden, nm.m.Cooldown.Reason(n+"@"+d.Version, v))
	}
	return nil
}
