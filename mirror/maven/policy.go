package maven

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mirror-proxy/mirror-proxy/fetch"
	"github.com/mirror-proxy/mirror-proxy/httpx"
	"github.com/mirror-proxy/mirror-proxy/policy"
)

// Policies: Maven metadata carries no per-version publish time, so a
// version's is the upstream's Last-Modified of its .pom, learnt once per
// version and kept (the .pom is stored as a metadata document, revalidated
// only after a month: releases do not change); a version whose .pom has
// none is judged by cooldownUnknown. Rules name group:artifact (name
// patterns in path.Match syntax, "org.example:*") and
// group:artifact:version. Under a cooldown, rules or a dated snapshot,
// an artifact's maven-metadata.xml leaves out what they hide (latest and
// release move to the newest version let through), and the files of a
// hidden version answer 403 with the reason.

// ParseDeny reads a deny rule as Maven names things: "group:artifact"
// (a pattern in path.Match syntax) or "group:artifact:version".
func ParseDeny(s string) (policy.Deny, error) {
	parts := strings.Split(strings.TrimSpace(s), ":")
	for _, p := range parts {
		if p == "" {
			parts = nil
		}
	}
	switch len(parts) {
	case 2:
		return policy.Deny{Name: parts[0] + ":" + parts[1]}, nil
	case 3:
		return policy.Deny{Name: parts[0] + ":" + parts[1], Version: parts[2]}, nil
	}
	return policy.Deny{}, fmt.Errorf("%q is not a Maven deny rule (examples: com.evil:lib, org.example:util:1.2.3, org.example:*)", s)
}

// filters reports whether what r asks of group:artifact name is judged.
func (mm *mavenMirror) filters(r *http.Request, name string) bool {
	_, snap := policy.Snapshot(r)
	return snap || mm.m.Cooldown.Active(name) || mm.m.Rules.Filters(name)
}

// judge says why name at version is not served ("" : it is).
func (mm *mavenMirror) judge(r *http.Request, name, version string, published time.Time) (string, policy.Verdict) {
	if why := mm.m.Rules.Refuse(name); why != "" {
		return why, policy.Verdict{Hidden: true, Denied: true}
	}
	return policy.Judge(r, mm.m.Cooldown, mm.m.Rules, policy.Judged{Name: name, What: name + ":" + version,
		Published: published, Versions: []string{version}}, time.Now())
}

// published is the upstream's Last-Modified of a version's .pom (zero:
// unknown).
func (mm *mavenMirror) published(ctx context.Context, c coords) (time.Time, error) {
	path := strings.ReplaceAll(c.group, ".", "/") + "/" + c.artifact + "/" + c.version + "/" + c.artifact + "-" + c.version + ".pom"
	key := mm.env.MetaKey("pubtime/" + path)
	res, err := mm.env.Core.MetaOf(ctx, key, pomTTL, func() *fetch.MetaSource {
		return &fetch.MetaSource{Key: key, URL: mm.m.URL + "/" + path, Client: mm.env.Client, TTL: pomTTL,
			NotFoundTTL: mm.m.NotFoundTTL}
	})
	if httpx.IsNotFound(err) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	return res.Entry.UpstreamModified(), nil
}

const pomTTL = 30 * 24 * time.Hour

// heldBack refuses a file of a version a policy hides (fail closed: not
// served while its time cannot be learnt).
func (mm *mavenMirror) heldBack(w http.ResponseWriter, r *http.Request, c coords) error {
	t, err := mm.published(r.Context(), c)
	if err != nil {
		return err
	}
	why, v := mm.judge(r, c.name(), c.version, t)
	return mm.env.FileVerdict(w, r, why, v)
}

// filtered is a maven-metadata.xml as the policies let a client see it:
// the document served and its bytes (which its checksums are of).
type filtered struct {
	doc  *fetch.Doc
	body []byte
}

func (f *filtered) Weight() int64 { return f.doc.Weight() + int64(len(f.body)) }

// filteredMetadata is an artifact's maven-metadata.xml without the
// versions the policies hide (a group's plugin list is left as it is).
func (mm *mavenMirror) filteredMetadata(r *http.Request, c coords, res fetch.MetaResult) (*filtered, error) {
	key := fetch.DerivedKey{ID: res.Entry.ID(), Day: policy.SnapshotDay(r)}
	if v, ok := mm.derived.Lookup(key, time.Now()); ok {
		return v.(*filtered), nil
	}
	var failed error
	v := mm.derived.Get(key, time.Now(), func() (any, policy.Window) {
		f, win, err := mm.filter(r, c, res)
		if err != nil {
			failed = err
			return nil, policy.Window{Next: time.Now()} // not kept
		}
		return f, win
	})
	if failed != nil {
		return nil, failed
	}
	return v.(*filtered), nil
}

func (mm *mavenMirror) filter(r *http.Request, c coords, res fetch.MetaResult) (*filtered, policy.Window, error) {
	var win policy.Window
	{
		body, err := res.Entry.Body()
		if err != nil {
			return nil, win, err
		}
		md, err := ParseMetadata(body)
		if err != nil {
			return nil, win, &httpx.UpstreamError{Status: http.StatusBadGateway, Msg: "stored maven-metadata.xml: " + err.Error()}
		}
		if md.ArtifactID == "" || len(md.Versioning.Versions) == 0 {
			return &filtered{doc: fetch.NewDoc(body, "m"), body: body}, win, nil
		}
		times := make([]time.Time, len(md.Versioning.Versions))
		errs := make([]error, len(md.Versioning.Versions))
		var wg sync.WaitGroup
		sem := make(chan struct{}, 8)
		for i, v := range md.Versioning.Versions {
			wg.Add(1)
			sem <- struct{}{}
			go func(i int, v string) {
				defer func() { <-sem; wg.Done() }()
				times[i], errs[i] = mm.published(r.Context(), coords{group: c.group, artifact: c.artifact, version: v})
			}(i, v)
		}
		wg.Wait()
		var kept []string
		for i, v := range md.Versioning.Versions {
			if errs[i] != nil {
				return nil, win, errs[i] // fail closed
			}
			why, verdict := mm.judge(r, c.name(), v, times[i])
			win.Add(verdict)
			if why == "" {
				kept = append(kept, v)
			}
		}
		out := renderFiltered(md, kept)
		return &filtered{doc: fetch.NewDoc(out, "m"), body: out}, win, nil
	}
}

// renderFiltered writes md with only the versions kept (in md's order);
// latest and release are the last kept (release: not a -SNAPSHOT).
func renderFiltered(md *Metadata, kept []string) []byte {
	latest, release := "", ""
	for _, v := range kept {
		latest = v
		if !strings.HasSuffix(v, "-SNAPSHOT") {
			release = v
		}
	}
	var b bytes.Buffer
	b.WriteString(xml.Header)
	fmt.Fprintf(&b, "<metadata>\n  <groupId>%s</groupId>\n  <artifactId>%s</artifactId>\n  <versioning>\n", xmlText(md.GroupID), xmlText(md.ArtifactID))
	if latest != "" {
		fmt.Fprintf(&b, "    <latest>%s</latest>\n", xmlText(latest))
	}
	if release != "" {
		fmt.Fprintf(&b, "    <release>%s</release>\n", xmlText(release))
	}
	b.WriteString("    <versions>\n")
	for _, v := range kept {
		fmt.Fprintf(&b, "      <version>%s</version>\n", xmlText(v))
	}
	fmt.Fprintf(&b, "    </versions>\n    <lastUpdated>%s</lastUpdated>\n  </versioning>\n</metadata>\n", xmlText(md.Versioning.LastUpdated))
	return b.Bytes()
}
