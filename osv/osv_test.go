package osv

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
)

func buildZip(t testing.TB, records map[string]string) *bytes.Reader {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, body := range records {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(body))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(buf.Bytes())
}

var records = map[string]string{
	"MAL-2024-1.json": `{"id":"MAL-2024-1","summary":"Malicious code in evil-pkg","affected":[{"package":{"ecosystem":"npm","name":"evil-pkg"},"versions":["1.0.1"]}]}`,
	"GHSA-aaaa.json": `{"id":"GHSA-aaaa","aliases":["CVE-2099-1"],"summary":"Prototype pollution","database_specific":{"severity":"HIGH"},
		"affected":[{"package":{"ecosystem":"npm","name":"lodash"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"4.17.21"}]}]}]}`,
	"GHSA-bbbb.json": `{"id":"GHSA-bbbb","severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
		"affected":[{"package":{"ecosystem":"npm","name":"x"},"ranges":[{"type":"SEMVER","events":[{"introduced":"1.0.0"},{"last_affected":"1.2.0"}]}]}]}`,
	"GHSA-cccc.json": `{"id":"GHSA-cccc","database_specific":{"severity":"MODERATE"},
		"affected":[{"package":{"ecosystem":"npm","name":"y"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"1.0.0"},{"fixed":"1.1.0"},{"introduced":"2.0.0"},{"fixed":"2.0.5"}]}]}]}`,
	"GHSA-gone.json": `{"id":"GHSA-gone","withdrawn":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"npm","name":"z"},"versions":["1.0.0"]}]}`,
	"PYSEC-1.json":   `{"id":"PYSEC-1","affected":[{"package":{"ecosystem":"PyPI","name":"requests"},"versions":["2.0.0"]}]}`,
	"MAL-alias.json": `{"id":"GHSA-mal","aliases":["MAL-2024-9"],"affected":[{"package":{"ecosystem":"npm","name":"sneaky"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"}]}]}]}`,
}

func idsOf(as []*Advisory) string {
	var s []string
	for _, a := range as {
		s = append(s, a.ID)
	}
	return strings.Join(s, ",")
}

func TestMatch(t *testing.T) {
	z := buildZip(t, records)
	ix, err := ReadZip(z, z.Size(), "npm", nil)
	if err != nil {
		t.Fatal(err)
	}
	if ix.Records != 5 {
		t.Errorf("%d npm records indexed, want 5 (one withdrawn, one PyPI)", ix.Records)
	}
	for _, c := range []struct{ name, version, want string }{
		{"evil-pkg", "1.0.1", "MAL-2024-1"}, {"evil-pkg", "1.0.0", ""},
		{"lodash", "4.17.20", "GHSA-aaaa"}, {"lodash", "4.17.21", ""}, {"lodash", "0.1.0", "GHSA-aaaa"}, {"lodash", "4.17.21-beta.1", "GHSA-aaaa"},
		{"x", "0.9.9", ""}, {"x", "1.0.0", "GHSA-bbbb"}, {"x", "1.2.0", "GHSA-bbbb"}, {"x", "1.2.1", ""},
		{"y", "1.0.5", "GHSA-cccc"}, {"y", "1.1.0", ""}, {"y", "1.5.0", ""}, {"y", "2.0.4", "GHSA-cccc"}, {"y", "2.0.5", ""},
		{"z", "1.0.0", ""}, {"requests", "2.0.0", ""}, {"sneaky", "9.9.9", "GHSA-mal"},
	} {
		if got := idsOf(ix.Match(c.name, c.version, SemVer)); got != c.want {
			t.Errorf("%s@%s: %q, want %q", c.name, c.version, got, c.want)
		}
	}
	sev := map[string]string{}
	mal := map[string]bool{}
	for _, n := range []string{"evil-pkg@1.0.1", "lodash@1.0.0", "x@1.0.0", "y@1.0.0", "sneaky@1.0.0"} {
		name, v, _ := strings.Cut(n, "@")
		for _, a := range ix.Match(name, v, SemVer) {
			sev[a.ID], mal[a.ID] = a.Severity, a.Malware
		}
	}
	if sev["GHSA-aaaa"] != "high" || sev["GHSA-bbbb"] != "critical" || sev["GHSA-cccc"] != "medium" || !mal["MAL-2024-1"] || !mal["GHSA-mal"] || mal["GHSA-aaaa"] {
		t.Errorf("severities %v, malware %v", sev, mal)
	}
}

// A truncated zip, or one with a record that is not JSON, is refused
// whole, naming the record.
func TestBadZips(t *testing.T) {
	z := buildZip(t, records)
	b := make([]byte, z.Size())
	z.ReadAt(b, 0)
	if _, err := ReadZip(bytes.NewReader(b[:len(b)/2]), int64(len(b)/2), "npm", nil); !errors.Is(err, ErrBadZip) {
		t.Errorf("truncated: %v", err)
	}
	bad := buildZip(t, map[string]string{"GOOD.json": records["GHSA-aaaa.json"], "BROKEN-1.json": `{"id":`})
	if _, err := ReadZip(bad, bad.Size(), "npm", nil); !errors.Is(err, ErrBadZip) || !strings.Contains(err.Error(), "BROKEN-1.json") {
		t.Errorf("a broken record: %v", err)
	}
}

func TestCVSS(t *testing.T) {
	for v, want := range map[string]float64{
		"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H": 9.8,
		"CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:H/I:H/A:H": 9.9,
		"CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N": 5.5,
		"CVSS:3.0/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:N/A:N": 3.1,
	} {
		if got, ok := cvss3Score(v); !ok || got != want {
			t.Errorf("%s: %v %v, want %v", v, got, ok, want)
		}
	}
	if _, ok := cvss3Score("CVSS:2.0/AV:N"); ok {
		t.Error("CVSS v2 read as v3")
	}
}

func TestSemVer(t *testing.T) {
	order := []string{"0.0.1", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.10.0", "v2.0.0+build.5"}
	for i := 0; i+1 < len(order); i++ {
		if c, ok := SemVer(order[i], order[i+1]); !ok || c >= 0 {
			t.Errorf("%s vs %s: %d %v", order[i], order[i+1], c, ok)
		}
	}
	if _, ok := SemVer("1.0", "1.0.0"); ok {
		t.Error("1.0 read as SemVer")
	}
}

// The memory an index of 200,000 records holds (reported in
// BENCHMARKS.md): go test ./osv -run '^$' -bench IndexMemory -benchtime 1x.
func BenchmarkIndexMemory(t *testing.B) {
	n := 200_000
	recs := make(map[string]string, n)
	for i := 0; i < n; i++ {
		recs[fmt.Sprintf("GHSA-%06d.json", i)] = fmt.Sprintf(`{"id":"GHSA-%06d","aliases":["CVE-2099-%d"],"summary":"A vulnerability in package number %d","database_specific":{"severity":"HIGH"},"affected":[{"package":{"ecosystem":"npm","name":"pkg-%d"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.%d.0"}]}],"versions":["1.0.0","1.0.1"]}]}`, i, i, i, i%50_000, i%100)
	}
	z := buildZip(t, recs)
	recs = nil
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	ix, err := ReadZip(z, z.Size(), "npm", nil)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.ReportMetric(float64(grown)/1e6, "MB")
	t.ReportMetric(float64(grown/int64(ix.Records)), "bytes/record")
	runtime.KeepAlive(ix)
}

func TestAudit(t *testing.T) {
	z := buildZip(t, records)
	ix, _ := ReadZip(z, z.Size(), "npm", nil)
	got := ix.Audit("y", []string{"0.1.0", "2.0.1"}, SemVer)
	if len(got) != 1 || got[0].ID != "GHSA-cccc" || got[0].Range(NPMRange) != ">=1.0.0 <1.1.0 || >=2.0.0 <2.0.5" {
		t.Errorf("y: %+v", got)
	}
	if got := ix.Audit("lodash", []string{"4.0.0"}, SemVer); len(got) != 1 || got[0].Range(NPMRange) != ">=0.0.0-0 <4.17.21" {
		t.Errorf("lodash: %+v", got)
	}
	if got := ix.Audit("evil-pkg", []string{"1.0.0"}, SemVer); len(got) != 0 {
		t.Errorf("evil-pkg 1.0.0: %+v", got)
	}
	// Composer's syntax, and every advisory of a name (its API is asked
	// by name only).
	composer := RangeSyntax{And: ",", Or: "|"}
	if got := ix.Audit("lodash", nil, SemVer); len(got) != 1 || got[0].Range(composer) != "<4.17.21" {
		t.Errorf("lodash, all: %+v", got)
	}
	if got := ix.Audit("sneaky", nil, SemVer); len(got) != 1 || got[0].Range(composer) != "*" {
		t.Errorf("sneaky, all: %+v", got)
	}
	if got := ix.Audit("y", nil, SemVer); len(got) != 1 || got[0].Range(composer) != ">=1.0.0,<1.1.0|>=2.0.0,<2.0.5" {
		t.Errorf("y, all: %+v", got)
	}
}

// A version the order cannot read (a Composer branch) is in no range,
// even one from the first version; a record listing it by name still
// names it.
func TestUnreadableVersion(t *testing.T) {
	z := buildZip(t, records)
	ix, _ := ReadZip(z, z.Size(), "npm", nil)
	if got := ix.Match("lodash", "dev-main", SemVer); len(got) != 0 {
		t.Errorf("lodash dev-main: %s, want nothing", idsOf(got))
	}
	z = buildZip(t, map[string]string{"A.json": `{"id":"A","affected":[{"package":{"ecosystem":"npm","name":"b"},"versions":["dev-main"]}]}`})
	ix, _ = ReadZip(z, z.Size(), "npm", nil)
	if got := ix.Match("b", "dev-main", SemVer); idsOf(got) != "A" {
		t.Errorf("b dev-main: %q, want A", idsOf(got))
	}
}
