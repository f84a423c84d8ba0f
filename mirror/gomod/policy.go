package gomod

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"

	"github.com/mirror-proxy/mirror-proxy/fetch"
	"github.com/mirror-proxy/mirror-proxy/httpx"
	"github.com/mirror-proxy/mirror-proxy/policy"
)

// Policies: a version's publish time is its .info's Time. Under a
// cooldown, deny rules (module@vX.Y.Z, or a module path pattern) or a
// dated snapshot, @v/list leaves out what they hide, @latest answers the
// newest version they let through (releases first, as the go command
// prefers them), and the .info, .mod and .zip of a hidden version answer
// 403 with the reason (fail closed: the go command stops there and says
// why, rather than falling through to another GOPROXY entry as it would
// on a 404). Judging a list reads the .info of each of its versions once
// (kept like every .info: they never change).

// filters reports whether what r asks of mod is judged.
func (gm *goMirror) filters(r *http.Request, mod string) bool {
	_, snap := policy.Snapshot(r)
	return snap || gm.m.Cooldown.Active(mod) || gm.m.Rules.Filters(mod)
}

// judge says why mod@version is not served ("" : it is).
func (gm *goMirror) judge(r *http.Request, mod, version string, published time.Time) (string, policy.Verdict) {
	if why := gm.m.Rules.Refuse(mod); why != "" {
		return why, policy.Verdict{Hidden: true, Denied: true}
	}
	return policy.Judge(r, gm.m.Cooldown, gm.m.Rules, policy.Judged{Name: mod, What: mod + "@" + version,
		Published: published, Versions: []string{version}}, time.Now())
}

// info is a version's .info, kept as a metadata document (it never
// changes, so it is revalidated only after a month).
func (gm *goMirror) info(ctx context.Context, req Request) (fetch.MetaResult, error) {
	p := Request{Module: req.Module, Escaped: req.Escaped, Kind: "info", Version: req.Version}.Path()
	key := gm.env.MetaKey(p)
	return gm.env.Core.MetaOf(ctx, key, infoTTL, func() *fetch.MetaSource {
		return &fetch.MetaSource{Key: key, URL: gm.m.URL + "/" + p, Client: gm.env.Client, TTL: infoTTL,
			NotFoundTTL: gm.m.NotFoundTTL, Transform: func(b []byte, _ *http.Response) ([]byte, error) {
				if _, err := parseInfo(b, req.Version); err != nil {
					return nil, err
				}
				return b, nil
			}}
	})
}

const infoTTL = 30 * 24 * time.Hour

// parseInfo reads a .info, which must name version ("" : any).
func parseInfo(b []byte, version string) (Info, error) {
	var info Info
	if err := json.Unmarshal(b, &info); err != nil || info.Version == "" || version != "" && info.Version != version {
		return info, fmt.Errorf("not the .info of %s", version)
	}
	return info, nil
}

// Info is a version's .info.
type Info struct {
	Version string
	Time    time.Time
}

// published is the Time of mod@version's .info (zero: unknown).
func (gm *goMirror) published(ctx context.Context, req Request) (time.Time, error) {
	res, err := gm.info(ctx, req)
	if err != nil {
		return time.Time{}, err
	}
	info, err := fetch.Parsed(gm.env.Core, res.Entry, func(b []byte) (Info, error) { return parseInfo(b, req.Version) })
	if err != nil {
		return time.Time{}, err
	}
	return info.Time, nil
}

// heldBack refuses a version's files when a policy hides it (403).
func (gm *goMirror) heldBack(w http.ResponseWriter, r *http.Request, req Request) error {
	t, err := gm.published(r.Context(), req)
	if err != nil && !httpx.IsNotFound(err) {
		return err // fail closed: not served while it cannot be judged
	}
	why, v := gm.judge(r, req.Module, req.Version, t)
	return gm.env.FileVerdict(w, r, why, v)
}

// listVersion is a listed version with its publish time.
type listVersion struct {
	version string
	time    time.Time
}

// allowed is the versions of a list the policies let through for r,
// oldest first, and the window the judgement holds in.
func (gm *goMirror) allowed(r *http.Request, req Request, body []byte) ([]string, policy.Window, error) {
	var vs []listVersion
	for _, line := range strings.Split(string(body), "\n") {
		if v := strings.TrimSpace(line); v != "" && module.Check(req.Module, v) == nil {
			vs = append(vs, listVersion{version: v})
		}
	}
	// The .info of each (at most 8 at a time, each once: kept).
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i := range vs {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			t, err := gm.published(r.Context(), Request{Module: req.Module, Escaped: req.Escaped, Kind: "info", Version: vs[i].version})
			mu.Lock()
			defer mu.Unlock()
			if err != nil && !httpx.IsNotFound(err) && firstErr == nil {
				firstErr = err
			}
			vs[i].time = t
		}(i)
	}
	wg.Wait()
	var w policy.Window
	if firstErr != nil {
		return nil, w, firstErr // fail closed
	}
	var out []string
	for _, v := range vs {
		why, verdict := gm.judge(r, req.Module, v.version, v.time)
		w.Add(verdict)
		if why == "" {
			out = append(out, v.version)
		}
	}
	sort.Slice(out, func(i, j int) bool { return semver.Compare(out[i], out[j]) < 0 })
	return out, w, nil
}

// filteredList serves @v/list as the policies let r see it.
func (gm *goMirror) filteredList(w http.ResponseWriter, r *http.Request, req Request, res fetch.MetaResult) error {
	key := fetch.DerivedKey{ID: res.Entry.ID(), Day: policy.SnapshotDay(r)}
	d, err := gm.derived.Doc(key, time.Now(), func() (*fetch.Doc, policy.Window, error) {
		body, err := res.Entry.Body()
		if err != nil {
			return nil, policy.Window{}, err
		}
		vs, win, err := gm.allowed(r, req, body)
		if err != nil {
			return nil, win, err
		}
		var b strings.Builder
		for _, v := range vs {
			b.WriteString(v + "\n")
		}
		return fetch.NewDoc([]byte(b.String()), "l"), win, nil
	})
	if err != nil {
		return err
	}
	return fetch.ServeDoc(w, r, d, hvText, res)
}

// filteredLatest answers @latest with the newest version the policies
// let r see: the newest release, else the newest prerelease, of the list;
// with an empty list (a module with only pseudo-versions) the upstream's
// @latest if it is let through.
func (gm *goMirror) filteredLatest(w http.ResponseWriter, r *http.Request, req Request) error {
	ctx := r.Context()
	lreq := Request{Module: req.Module, Escaped: req.Escaped, Kind: "list"}
	res, err := gm.meta(ctx, lreq)
	if err != nil {
		return err
	}
	body, err := res.Entry.Body()
	if err != nil {
		return err
	}
	vs, _, err := gm.allowed(r, lreq, body)
	if err != nil {
		return err
	}
	pick := ""
	for i := len(vs) - 1; i >= 0 && pick == ""; i-- {
		if semver.Prerelease(vs[i]) == "" {
			pick = vs[i]
		}
	}
	if pick == "" && len(vs) > 0 {
		pick = vs[len(vs)-1]
	}
	if pick == "" && strings.TrimSpace(string(body)) == "" {
		// Only pseudo-versions: the upstream's answer, judged.
		lres, err := gm.meta(ctx, req)
		if err != nil {
			return err
		}
		b, err := lres.Entry.Body()
		if err != nil {
			return err
		}
		info, err := parseInfo(b, "")
		if err != nil {
			return &httpx.UpstreamError{Status: http.StatusBadGateway, Msg: err.Error()}
		}
		if why, _ := gm.judge(r, req.Module, info.Version, info.Time); why != "" {
			return httpx.NewError(http.StatusForbidden, why)
		}
		return gm.env.Core.ServeMeta(w, r, lres, hvJSON)
	}
	if pick == "" {
		return httpx.NewError(http.StatusForbidden, fmt.Sprintf("the mirror's policies let no version of %s through", req.Module))
	}
	ires, err := gm.info(ctx, Request{Module: req.Module, Escaped: req.Escaped, Kind: "info", Version: pick})
	if err != nil {
		return err
	}
	return gm.env.Core.ServeMeta(w, r, ires, hvJSON)
}
