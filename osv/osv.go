// Package osv reads OSV advisory data (the per-ecosystem all.zip exports
// of https://osv.dev, one JSON record per file) into a compact index of the
// versions each record affects, by package name, for the advisories
// policy: malware (MAL- records) and vulnerabilities by severity.
package osv

import (
	"archive/zip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Advisory is what the index keeps of a record.
type Advisory struct {
	ID       string
	Aliases  []string
	Summary  string
	Severity string // "critical", "high", "medium", "low" or ""
	Malware  bool   // the id or an alias starts with MAL-
	// Published is when the record was first published (RFC 3339, as
	// the record gives it; "" if it does not).
	Published string
}

// Link is the record's page on osv.dev.
func (a *Advisory) Link() string { return "https://osv.dev/vulnerability/" + a.ID }

// Compare orders two versions of an ecosystem; ok is false when either is
// not a version it can read.
type Compare func(a, b string) (c int, ok bool)

// Index is the advisories of one ecosystem by package name.
type Index struct {
	Ecosystem string
	Records   int
	byName    map[string][]affected
}

// affected is one record's affected versions of one package.
type affected struct {
	adv      *Advisory
	ranges   [][]event // each sorted as given; evaluated in order
	versions []string  // listed exactly
}

// event is one OSV range event.
type event struct {
	kind    byte // 'i' introduced, 'f' fixed, 'l' last_affected
	version string
}

// record is the part of an OSV record the index reads.
type record struct {
	ID        string   `json:"id"`
	Aliases   []string `json:"aliases"`
	Summary   string   `json:"summary"`
	Withdrawn string   `json:"withdrawn"`
	Published string   `json:"published"`
	Severity  []struct {
		Type  string `json:"type"`
		Score string `json:"score"`
	} `json:"severity"`
	DatabaseSpecific struct {
		Severity string `json:"severity"`
	} `json:"database_specific"`
	Affected []struct {
		Package struct {
			Ecosystem string `json:"ecosystem"`
			Name      string `json:"name"`
		} `json:"package"`
		Ranges []struct {
			Type   string              `json:"type"`
			Events []map[string]string `json:"events"`
		} `json:"ranges"`
		Versions []string `json:"versions"`
	} `json:"affected"`
}

// Limits on what a zip may hold.
const (
	maxRecordBytes = 4 << 20
	maxRecords     = 2_000_000
)

// ErrBadZip: the data is not a complete OSV export (the previous data
// stays in force).
var ErrBadZip = errors.New("not a valid OSV export")

// ReadZip indexes an OSV export of ecosystem (records of other ecosystems
// in it are skipped). normalize maps package names as the ecosystem
// compares them (PyPI's normalized names; nil: as given). A zip that is
// truncated or holds a record that is not valid JSON is refused whole,
// naming the record.
func ReadZip(r io.ReaderAt, size int64, ecosystem string, normalize func(string) string) (*Index, error) {
	return readZip(r, size, ecosystem, normalize, nil)
}

// readZip is ReadZip telling checked (when set) how many of the zip's
// files it has read.
func readZip(r io.ReaderAt, size int64, ecosystem string, normalize func(string) string, checked func(done, total int)) (*Index, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadZip, err)
	}
	if len(zr.File) > maxRecords {
		return nil, fmt.Errorf("%w: %d records (at most %d)", ErrBadZip, len(zr.File), maxRecords)
	}
	if normalize == nil {
		normalize = func(s string) string { return s }
	}
	ix := &Index{Ecosystem: ecosystem, byName: map[string][]affected{}}
	names := map[string]string{} // interned
	// intern returns one copy of each version string: "0" and the
	// versions many records name are kept once.
	interned := map[string]string{}
	intern := func(s string) string {
		if x, ok := interned[s]; ok {
			return x
		}
		interned[s] = s
		return s
	}
	for i, f := range zr.File {
		if checked != nil && (i%1000 == 0 || i == len(zr.File)-1) {
			checked(i+1, len(zr.File))
		}
		if f.FileInfo().IsDir() || !strings.HasSuffix(f.Name, ".json") {
			continue
		}
		rec, err := readRecord(f)
		if err != nil {
			return nil, fmt.Errorf("%w: record %s: %v", ErrBadZip, f.Name, err)
		}
		if rec.Withdrawn != "" {
			continue
		}
		adv := &Advisory{ID: rec.ID, Aliases: rec.Aliases, Summary: rec.Summary, Severity: severityOf(rec), Published: rec.Published}
		adv.Malware = strings.HasPrefix(rec.ID, "MAL-")
		for _, a := range rec.Aliases {
			adv.Malware = adv.Malware || strings.HasPrefix(a, "MAL-")
		}
		counted := false
		for _, af := range rec.Affected {
			if af.Package.Ecosystem != ecosystem && !strings.HasPrefix(af.Package.Ecosystem, ecosystem+":") {
				continue
			}
			name := normalize(af.Package.Name)
			if n, ok := names[name]; ok {
				name = n
			} else {
				names[name] = name
			}
			e := affected{adv: adv}
			if len(af.Versions) > 0 {
				e.versions = make([]string, len(af.Versions))
				for i, v := range af.Versions {
					e.versions[i] = intern(v)
				}
			}
			for _, rg := range af.Ranges {
				if rg.Type != "SEMVER" && rg.Type != "ECOSYSTEM" {
					continue // GIT ranges name commits
				}
				var evs []event
				for _, m := range rg.Events {
					for k, v := range m {
						switch k {
						case "introduced":
							evs = append(evs, event{'i', intern(v)})
						case "fixed":
							evs = append(evs, event{'f', intern(v)})
						case "last_affected":
							evs = append(evs, event{'l', intern(v)})
						}
					}
				}
				e.ranges = append(e.ranges, evs)
			}
			ix.byName[name] = append(ix.byName[name], e)
			if !counted {
				ix.Records++
				counted = true
			}
		}
	}
	return ix, nil
}

func readRecord(f *zip.File) (*record, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxRecordBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxRecordBytes {
		return nil, fmt.Errorf("larger than %d bytes", maxRecordBytes)
	}
	var rec record
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, err
	}
	if rec.ID == "" {
		return nil, errors.New("no id")
	}
	return &rec, nil
}

// severityOf is a record's severity: database_specific.severity (GitHub's
// CRITICAL, HIGH, MODERATE, LOW), else the band of its CVSS v3 score.
func severityOf(rec *record) string {
	switch strings.ToLower(rec.DatabaseSpecific.Severity) {
	case "critical":
		return "critical"
	case "high":
		return "high"
	case "moderate", "medium":
		return "medium"
	case "low":
		return "low"
	}
	for _, s := range rec.Severity {
		if s.Type != "CVSS_V3" {
			continue
		}
		if score, ok := cvss3Score(s.Score); ok {
			return band(score)
		}
	}
	return ""
}

// band is the CVSS qualitative rating of a score.
func band(score float64) string {
	switch {
	case score >= 9:
		return "critical"
	case score >= 7:
		return "high"
	case score >= 4:
		return "medium"
	case score > 0:
		return "low"
	}
	return ""
}

// Match returns the advisories that affect name at version, by cmp (the
// ecosystem's order); a version cmp cannot read matches only the records
// that list it exactly.
func (ix *Index) Match(name, version string, cmp Compare) []*Advisory {
	var out []*Advisory
	for _, e := range ix.byName[name] {
		if e.affects(version, cmp) {
			out = append(out, e.adv)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Names is how many package names the index holds.
func (ix *Index) Names() int { return len(ix.byName) }

func (e affected) affects(v string, cmp Compare) bool {
	for _, lv := range e.versions {
		if lv == v {
			return true
		}
	}
	for _, evs := range e.ranges {
		if inRange(evs, v, cmp) {
			return true
		}
	}
	return false
}

// inRange evaluates OSV range events for v: from an introduced version
// (0: the beginning) up to, not including, a fixed one, or up to and
// including a last_affected one; several such intervals may follow.
//
// A version the ecosystem's order cannot read (a Composer dev branch) is
// in no range: only a record that lists it by name affects it, as the
// clients' own audits judge it (Composer compares branches only for
// equality).
func inRange(evs []event, v string, cmp Compare) bool {
	if _, ok := cmp(v, v); !ok {
		return false
	}
	sorted := append([]event(nil), evs...)
	ok := true
	sort.SliceStable(sorted, func(i, j int) bool {
		if sorted[i].version == "0" || sorted[j].version == "0" {
			return sorted[i].version == "0" && sorted[j].version != "0"
		}
		c, good := cmp(sorted[i].version, sorted[j].version)
		ok = ok && good
		return c < 0
	})
	if !ok {
		return false
	}
	affected := false
	for _, ev := range sorted {
		switch ev.kind {
		case 'i':
			if ev.version == "0" {
				affected = true
				continue
			}
			if c, good := cmp(v, ev.version); good && c >= 0 {
				affected = true
			} else if good {
				return affected
			}
		case 'f':
			if c, good := cmp(v, ev.version); good && c >= 0 {
				affected = false
			} else if good {
				return affected
			}
		case 'l':
			if c, good := cmp(v, ev.version); good && c > 0 {
				affected = false
			} else if good {
				return affected
			}
		}
	}
	return affected
}

// Finding is an advisory that affects some of the versions asked about,
// with the versions it affects.
type Finding struct {
	*Advisory
	affected affected
}

// RangeSyntax is how an ecosystem writes a set of versions: And joins
// the bounds of one interval, Or the intervals and listed versions, Floor
// is the lower bound written for "from the first version" ("": none).
type RangeSyntax struct{ And, Or, Floor string }

// NPMRange is npm's (and SemVer's) range syntax: ">=1.0.0 <1.2.3 || 2.0.0";
// the floor includes prereleases.
var NPMRange = RangeSyntax{And: " ", Or: " || ", Floor: ">=0.0.0-0"}

// Range writes the versions f affects in syntax s ("*" for an interval
// with no bound).
func (f Finding) Range(s RangeSyntax) string {
	var parts []string
	add := func(bounds ...string) {
		var b []string
		for _, x := range bounds {
			if x != "" {
				b = append(b, x)
			}
		}
		if len(b) == 0 {
			b = []string{"*"}
		}
		parts = append(parts, strings.Join(b, s.And))
	}
	for _, evs := range f.affected.ranges {
		lo, open := "", false
		for _, ev := range evs {
			switch ev.kind {
			case 'i':
				lo, open = ">="+ev.version, true
				if ev.version == "0" {
					lo = s.Floor
				}
			case 'f':
				add(lo, "<"+ev.version)
				lo, open = "", false
			case 'l':
				add(lo, "<="+ev.version)
				lo, open = "", false
			}
		}
		if open {
			add(lo)
		}
	}
	parts = append(parts, f.affected.versions...)
	return strings.Join(parts, s.Or)
}

// Audit returns the advisories that affect name at any of versions (nil:
// every advisory of name, whatever its versions), each once.
func (ix *Index) Audit(name string, versions []string, cmp Compare) []Finding {
	var out []Finding
	seen := map[*Advisory]bool{}
	for _, e := range ix.byName[name] {
		if seen[e.adv] {
			continue
		}
		hit := versions == nil
		for _, v := range versions {
			if hit = e.affects(v, cmp); hit {
				break
			}
		}
		if hit {
			seen[e.adv] = true
			out = append(out, Finding{Advisory: e.adv, affected: e})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
