package rubygems

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mirror-proxy/mirror-proxy/fetch"
	"github.com/mirror-proxy/mirror-proxy/httpx"
	"github.com/mirror-proxy/mirror-proxy/policy"
)

// Policies: a version's publish time is its created_at in the upstream's
// versions API (/api/v1/versions/<gem>.json, read once per gem and
// revalidated with the TTL); one it does not list is judged by
// cooldownUnknown. Under a cooldown, deny rules (gem, gem@1.2.3) or a dated
// snapshot, /info/<gem> leaves out the lines of the versions they hide, so
// Bundler resolves the newest version let through, and their .gem files
// answer 403 with the reason. A filtered /info has another MD5 than the
// upstream's, which Bundler compares with the gem's /versions line: once a
// gem's /info has been filtered, /versions carries a line for it with the
// versions let through and the filtered document's MD5 (so Bundler does
// not fetch it again each time); a gem no client has asked for keeps the
// upstream's line until one does.

// filters reports whether what r asks of name is judged.
func (gm *gemsMirror) filters(r *http.Request, name string) bool {
	_, snap := policy.Snapshot(r)
	return snap || gm.m.Cooldown.Active(name) || gm.m.Rules.Filters(name)
}

// versionOf is the version of an /info line's version ("1.0.0-java":
// "1.0.0"), as rules and the versions API name it.
func versionOf(v string) string {
	if i := strings.IndexByte(v, '-'); i > 0 {
		return v[:i]
	}
	return v
}

// createdAt are the upstream's publish times of a gem's versions.
func (gm *gemsMirror) createdAt(ctx context.Context, name string) (map[string]time.Time, error) {
	path := "api/v1/versions/" + name + ".json"
	key := gm.env.MetaKey(path)
	res, err := gm.env.Core.MetaOf(ctx, key, gm.m.TTL, func() *fetch.MetaSource {
		return &fetch.MetaSource{Key: key, URL: gm.m.URL + "/" + path, Client: gm.env.Client, TTL: gm.m.TTL, NotFoundTTL: gm.m.NotFoundTTL,
			Transform: func(b []byte, _ *http.Response) ([]byte, error) { _, err := parseCreatedAt(b); return b, err }}
	})
	if httpx.IsNotFound(err) {
		return map[string]time.Time{}, nil
	}
	if err != nil {
		return nil, err
	}
	return fetch.Parsed(gm.env.Core, res.Entry, parseCreatedAt)
}

func parseCreatedAt(b []byte) (map[string]time.Time, error) {
	var vs []struct {
		Number    string `json:"number"`
		Platform  string `json:"platform"`
		CreatedAt string `json:"created_at"`
	}
	if err := json.Unmarshal(b, &vs); err != nil {
		return nil, fmt.Errorf("versions API: %v", err)
	}
	out := map[string]time.Time{}
	for _, v := range vs {
		t, err := time.Parse(time.RFC3339, v.CreatedAt)
		if err != nil {
			continue
		}
		full := v.Number
		if v.Platform != "" && v.Platform != "ruby" {
			full += "-" + v.Platform
		}
		out[full] = t
	}
	return out, nil
}

// judge says why name's version (as /info writes it) is not served.
func (gm *gemsMirror) judge(r *http.Request, name, version string, times map[string]time.Time) (string, policy.Verdict) {
	if why := gm.m.Rules.Refuse(name); why != "" {
		return why, policy.Verdict{Hidden: true, Denied: true}
	}
	return policy.Judge(r, gm.m.Cooldown, gm.m.Rules, policy.Judged{Name: name, What: name + " " + version,
		Published: times[version], Versions: []string{version, versionOf(version)}}, time.Now())
}

// filteredInfo is a gem's /info without the hidden versions' lines.
type filteredInfo struct {
	body     []byte
	etag     string   // quoted MD5, as Bundler checks it
	versions []string // let through
}

func (f *filteredInfo) Weight() int64 { return int64(len(f.body)) }

// overrides are the /versions lines of gems whose /info was filtered,
// by name (this replica's; see the policies' comment).
type overrides struct {
	mu    sync.Mutex
	lines map[string]string
	gen   uint64
}

func (o *overrides) set(name, line string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.lines == nil {
		o.lines = map[string]string{}
	}
	if o.lines[name] != line {
		if len(o.lines) > 100000 {
			o.lines = map[string]string{} // bounded
		}
		o.lines[name] = line
		o.gen++
	}
}

// snapshot is the lines, sorted by name, and their generation.
func (o *overrides) snapshot() (string, uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var b strings.Builder
	for _, l := range o.lines {
		b.WriteString(l + "\n")
	}
	return b.String(), o.gen
}

// filterInfo filters a gem's /info for r.
func (gm *gemsMirror) filterInfo(r *http.Request, name string, res fetch.MetaResult) (*filteredInfo, error) {
	times, err := gm.createdAt(r.Context(), name)
	if err != nil {
		return nil, err // fail closed
	}
	key := fetch.DerivedKey{ID: res.Entry.ID(), Day: policy.SnapshotDay(r)}
	if v, ok := gm.derived.Lookup(key, time.Now()); ok {
		return v.(*filteredInfo), nil
	}
	lines, err := fetch.Parsed(gm.env.Core, res.Entry, ParseInfo)
	if err != nil {
		return nil, &httpx.UpstreamError{Status: http.StatusBadGateway, Msg: fmt.Sprintf("stored /info/%s: %v", name, err)}
	}
	v := gm.derived.Get(key, time.Now(), func() (any, policy.Window) {
		var win policy.Window
		var b strings.Builder
		b.WriteString("---\n")
		var kept []string
		for _, l := range lines {
			why, verdict := gm.judge(r, name, l.Version, times)
			win.Add(verdict)
			if why == "" {
				b.WriteString(l.Line + "\n")
				kept = append(kept, l.Version)
			}
		}
		sum := md5.Sum([]byte(b.String()))
		return &filteredInfo{body: []byte(b.String()), etag: `"` + hex.EncodeToString(sum[:]) + `"`, versions: kept}, win
	})
	f := v.(*filteredInfo)
	if _, snap := policy.Snapshot(r); !snap {
		gm.over.set(name, name+" "+strings.Join(f.versions, ",")+" "+strings.Trim(f.etag, `"`))
	}
	return f, nil
}

// heldBack refuses a .gem of a version a policy hides (fail closed: not
// served while its times cannot be read).
func (gm *gemsMirror) heldBack(w http.ResponseWriter, r *http.Request, name, version string) error {
	times, err := gm.createdAt(r.Context(), name)
	if err != nil {
		return err
	}
	why, v := gm.judge(r, name, version, times)
	return gm.env.FileVerdict(w, r, why, v)
}
