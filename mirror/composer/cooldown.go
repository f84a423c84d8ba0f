package composer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/mirror-proxy/mirror-proxy/fetch"
	"github.com/mirror-proxy/mirror-proxy/policy"
)

// Cooldown: versions released (their "time") less than the mirror's
// cooldown ago are left out of p2 files, so that Composer resolves the
// newest version old enough; their dists answer 403 with the date. A p2
// file is filtered once per stored version and kept until a held-back
// version comes of age.

func released(s string) time.Time {
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04:05-0700", "2006-01-02 15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t
		}
	}
	return time.Time{}
}

// cooledP2 is the p2 file of res as the cooldown lets clients see it:
// unminified (Composer 2 reads both), every other key kept.
func (cm *composerMirror) cooledP2(res fetch.MetaResult, name string) (*fetch.Doc, error) {
	var ferr error
	d := cm.derived.Get(res.Entry.ID(), time.Now(), func() (any, policy.Window) {
		var w policy.Window
		v, err := cm.env.Core.Parse(res.Entry, func(b []byte) (any, error) { return Expand(b, name) })
		if err != nil {
			ferr = err
			return nil, w
		}
		body, err := res.Entry.Body()
		if err != nil {
			ferr = err
			return nil, w
		}
		var doc map[string]json.RawMessage
		if err := json.Unmarshal(body, &doc); err != nil {
			ferr = err
			return nil, w
		}
		now := time.Now()
		kept := []Version{}
		for _, ver := range v.([]Version) {
			verdict := cm.m.Cooldown.Judge(released(str(ver, "time")), now)
			w.Add(verdict)
			if !verdict.Hidden {
				kept = append(kept, ver)
			}
		}
		delete(doc, "minified")
		doc["packages"], _ = json.Marshal(map[string][]Version{name: kept})
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(doc)
		return fetch.NewDoc(bytes.TrimRight(buf.Bytes(), "\n"), "c"), w
	})
	if ferr != nil || d == nil {
		return nil, &fetch.UpstreamError{Status: http.StatusBadGateway, Msg: fmt.Sprintf("metadata of %s: %v", name, errors.Join(ferr))}
	}
	return d.(*fetch.Doc), nil
}

// heldBack refuses the dist of a version the cooldown hides.
func (cm *composerMirror) heldBack(ctx context.Context, name, version, ref string) error {
	var versions []Version
	for _, dev := range []bool{false, true} {
		res, err := cm.p2Meta(ctx, name, dev)
		if err != nil {
			continue
		}
		v, err := cm.env.Core.Parse(res.Entry, func(b []byte) (any, error) { return Expand(b, name) })
		if err != nil {
			continue
		}
		versions = append(versions, v.([]Version)...)
		if d, ok := FindDist(versions, version, ref); ok {
			if verdict := cm.m.Cooldown.Judge(released(d.Time), time.Now()); verdict.Hidden {
				return fetch.NewError(http.StatusForbidden, cm.m.Cooldown.Reason(name+" "+version, verdict))
			}
			return nil
		}
	}
	return nil // not found: the download path says so
}
