package servertest_test

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/coord"
	"github.com/mirror-proxy/mirror-proxy/internal/fakecran"
	"github.com/mirror-proxy/mirror-proxy/internal/fakenpm"
	"github.com/mirror-proxy/mirror-proxy/internal/testenv"
	"github.com/mirror-proxy/mirror-proxy/mirror/mirrortest"
	"github.com/mirror-proxy/mirror-proxy/osv"
	"github.com/mirror-proxy/mirror-proxy/policy"
	"github.com/mirror-proxy/mirror-proxy/proxy"
	"github.com/mirror-proxy/mirror-proxy/storage/local"
)

// A packument served (and kept for replay) before the advisory data
// arrived is filtered as soon as the data is loaded, not when its memory
// entry expires.
func TestAdvisoryDataEndsReplaysOfUnfilteredDocuments(t *testing.T) {
	up := fakenpm.New()
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	st, _ := local.New(t.TempDir())
	srv := newServer(proxy.Options{Store: st, MetaPrefix: "mirror-meta", DistPrefix: "mirror-dist",
		Mirrors: []proxy.Mirror{{Name: "npm", Type: "npm", URL: up.URL(), TTL: time.Hour, NotFoundTTL: time.Second,
			Advisories: &policy.AdvisoriesConfig{Block: []string{"malware"}}}},
		OSVRefresh: 100 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	base := mirrortest.ServeProxy(t, srv) + "/npm"
	for i := 0; i < 3; i++ { // served, kept, replayed
		if _, body, _ := do(t, "GET", base+"/left-pad"); !strings.Contains(string(body), `"latest":"1.3.0"`) {
			t.Fatalf("before the data: %s", body)
		}
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("MAL-1.json")
	w.Write([]byte(`{"id":"MAL-1","affected":[{"package":{"ecosystem":"npm","name":"left-pad"},"versions":["1.3.0"]}]}`))
	zw.Close()
	zipPath := filepath.Join(t.TempDir(), "all.zip")
	os.WriteFile(zipPath, buf.Bytes(), 0o644)
	if _, err := osv.Import(context.Background(), st, "mirror-meta/osv", "npm", zipPath, osv.Progress{}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, body, _ := do(t, "GET", base+"/left-pad")
		if strings.Contains(string(body), "MAL-1") && !strings.Contains(string(body), `"latest":"1.3.0"`) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("an hour-fresh packument is still served unfiltered after the advisory data loaded:\n%.300s", body)
		}
	}
}

// With OSV_URL, one replica at a time (a Redis lease) fetches the export,
// checks it and stores it; a new record blocks on every replica within a
// refresh or two; a truncated export is refused and the data in force
// stays.
func TestOSVRefreshReachesEveryReplica(t *testing.T) {
	rd := testenv.StartRedis(t)
	up := fakenpm.New()
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	zipOf := func(records ...string) []byte {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		for i, r := range records {
			w, _ := zw.Create(fmt.Sprintf("r%d.json", i))
			w.Write([]byte(r))
		}
		zw.Close()
		return buf.Bytes()
	}
	malA := `{"id":"MAL-A","affected":[{"package":{"ecosystem":"npm","name":"left-pad"},"versions":["1.3.0"]}]}`
	malB := `{"id":"MAL-B","affected":[{"package":{"ecosystem":"npm","name":"left-pad"},"versions":["1.2.0"]}]}`
	var export atomic.Pointer[[]byte]
	var fetches atomic.Int64
	set := func(b []byte) { export.Store(&b) }
	set(zipOf(malA))
	osvSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/npm/all.zip" {
			http.NotFound(w, r)
			return
		}
		fetches.Add(1)
		w.Write(*export.Load())
	}))
	defer osvSrv.Close()
	st, _ := local.New(t.TempDir())
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var bases []string
	for i := 0; i < 2; i++ {
		co, err := coord.NewCoordinator(rd.URL, log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { co.Close() })
		srv := newServer(proxy.Options{Store: st, MetaPrefix: "mirror-meta", DistPrefix: "mirror-dist", Coordinator: co,
			Mirrors: []proxy.Mirror{{Name: "npm", Type: "npm", URL: up.URL(), TTL: time.Hour, NotFoundTTL: time.Second,
				Advisories: &policy.AdvisoriesConfig{Block: []string{"malware"}}}},
			OSVURL: osvSrv.URL, OSVRefresh: 300 * time.Millisecond, Logger: log})
		bases = append(bases, mirrortest.ServeProxy(t, srv)+"/npm")
	}
	waitFor := func(what string, ok func(body string) bool) {
		t.Helper()
		for _, base := range bases {
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				_, body, _ := do(t, "GET", base+"/left-pad")
				if ok(string(body)) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: %s:\n%.400s", base, what, body)
				}
			}
		}
	}
	waitFor("MAL-A never blocked 1.3.0", func(b string) bool { return strings.Contains(b, "MAL-A") })
	set(zipOf(malA, malB))
	waitFor("the new record MAL-B never reached this replica", func(b string) bool { return strings.Contains(b, "MAL-B") })
	set(zipOf(malA, malB)[:100]) // truncated
	time.Sleep(time.Second)      // several refreshes
	waitFor("a truncated export replaced the data in force", func(b string) bool { return strings.Contains(b, "MAL-A") && strings.Contains(b, "MAL-B") })
	t.Logf("%d fetches of the export by two replicas", fetches.Load())
}

// A file an advisories policy refuses is a 403 naming the advisory,
// counted in mirror_advisory_blocks_total by reason and logged with the
// client's token name (never the token); in report mode it is served,
// its response names the advisory in X-Mirror-Advisory, and it is logged.
func TestAdvisoryRefusalsAreCountedAndLogged(t *testing.T) {
	up := fakenpm.New()
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	st, _ := local.New(t.TempDir())
	importOSV(t, st, "npm", `{"id":"MAL-7","summary":"Malicious code","affected":[{"package":{"ecosystem":"npm","name":"left-pad"},"versions":["1.3.0"]}]}`)
	const secret = "reader-token-0123456789"
	logs := &logBuf{}
	srv := newServer(proxy.Options{Store: st, MetaPrefix: "mirror-meta", DistPrefix: "mirror-dist",
		Mirrors: []proxy.Mirror{
			{Name: "npm", Type: "npm", URL: up.URL(), TTL: time.Hour, NotFoundTTL: time.Second,
				Advisories: &policy.AdvisoriesConfig{Block: []string{"malware"}}},
			{Name: "report", Type: "npm", URL: up.URL(), TTL: time.Hour, NotFoundTTL: time.Second,
				Advisories: &policy.AdvisoriesConfig{Block: []string{"malware"}, Report: true}}},
		Tokens:     []proxy.Token{token(t, "ci-reader", secret, true, false)},
		OSVRefresh: 100 * time.Millisecond, Logger: newTextLogger(logs)})
	base := mirrortest.ServeProxy(t, srv)
	auth := []string{"Authorization", "Bearer " + secret}
	tarball := fakenpm.TarballPath("left-pad", "1.3.0")
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, body, _ := do(t, "GET", base+"/npm/left-pad", auth...); strings.Contains(string(body), "MAL-7") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the advisory data was never loaded")
		}
	}
	resp, body, _ := do(t, "GET", base+"/npm"+tarball, auth...)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "MAL-7") || !strings.Contains(string(body), "https://osv.dev/vulnerability/MAL-7") {
		t.Errorf("blocked tarball: %d %s, want 403 naming MAL-7 and its link", resp.StatusCode, body)
	}
	resp, _, _ = do(t, "GET", base+"/report"+tarball, auth...)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Mirror-Advisory") != "MAL-7" {
		t.Errorf("report mode: %d, X-Mirror-Advisory %q; want 200 and MAL-7", resp.StatusCode, resp.Header.Get("X-Mirror-Advisory"))
	}
	_, metrics, _ := do(t, "GET", base+"/metrics")
	if want := `mirror_advisory_blocks_total{mirror="npm",reason="malware"} 1`; !strings.Contains(string(metrics), want) {
		t.Errorf("metrics lack %s", want)
	}
	if strings.Contains(string(metrics), `mirror_advisory_blocks_total{mirror="report"`) {
		t.Errorf("report mode counted as a block")
	}
	got := logs.String()
	for _, want := range []string{`msg="advisory: refused" mirror=npm package=left-pad version=1.3.0 advisories=MAL-7 reason=malware token=ci-reader`,
		`msg="advisory (report mode: served)" mirror=report package=left-pad version=1.3.0 advisories=MAL-7`} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %s:\n%s", want, got)
		}
	}
	if strings.Contains(got, secret) {
		t.Errorf("the token appears in the log")
	}
}

// importOSV stores an export of records for ecosystem as osv import does.
func importOSV(t *testing.T, st *local.Store, ecosystem string, records ...string) {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i, r := range records {
		w, _ := zw.Create(fmt.Sprintf("r%d.json", i))
		w.Write([]byte(r))
	}
	zw.Close()
	zipPath := filepath.Join(t.TempDir(), "all.zip")
	os.WriteFile(zipPath, buf.Bytes(), 0o644)
	if _, err := osv.Import(context.Background(), st, "mirror-meta/osv", ecosystem, zipPath, osv.Progress{}); err != nil {
		t.Fatal(err)
	}
}

// A CRAN mirror judges versions in R's order: a version an advisory
// blocks leaves PACKAGES, and its file (current or archived) is a 403
// naming the advisory.
func TestCRANAdvisories(t *testing.T) {
	up := fakecran.New()
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	st, _ := local.New(t.TempDir())
	importOSV(t, st, "CRAN",
		`{"id":"GHSA-cran-0001","database_specific":{"severity":"CRITICAL"},"affected":[{"package":{"ecosystem":"CRAN","name":"hello"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1.1"}]}]}]}`,
		`{"id":"MAL-2099-cran","affected":[{"package":{"ecosystem":"CRAN","name":"world"},"versions":["0.5"]}]}`)
	srv := newServer(proxy.Options{Store: st, MetaPrefix: "mirror-meta", DistPrefix: "mirror-dist",
		Mirrors: []proxy.Mirror{{Name: "cran", Type: "cran", URL: up.URL(), TTL: time.Hour, NotFoundTTL: time.Second,
			Advisories: &policy.AdvisoriesConfig{Block: []string{"malware", "critical"}}}},
		OSVRefresh: 100 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	base := mirrortest.ServeProxy(t, srv) + "/cran"
	up.Archive("hello", "1.0")
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, body, _ := do(t, "GET", base+"/src/contrib/PACKAGES")
		if strings.Contains(string(body), "Package: hello") && !strings.Contains(string(body), "Package: world") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("PACKAGES still lists world 0.5 (malware), or lost hello 1.1:\n%s", body)
		}
	}
	for path, want := range map[string]string{
		"/src/contrib/world_0.5.tar.gz":               "MAL-2099-cran",
		"/src/contrib/Archive/hello/hello_1.0.tar.gz": "GHSA-cran-0001",
		"/src/contrib/hello_1.1.tar.gz":               "",
	} {
		resp, body, _ := do(t, "GET", base+path)
		switch {
		case want == "" && resp.StatusCode != http.StatusOK:
			t.Errorf("%s: %d %s, want 200 (1.1 is fixed)", path, resp.StatusCode, body)
		case want != "" && (resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), want)):
			t.Errorf("%s: %d %s, want 403 naming %s", path, resp.StatusCode, body, want)
		}
	}
}

// A published file is refused when known malware of the same name and
// version matches it; other advisories (about the public package of that
// name) do not touch hosted packages.
func TestHostedFilesMatchingMalwareAreRefused(t *testing.T) {
	st, _ := local.New(t.TempDir())
	importOSV(t, st, "PyPI",
		`{"id":"MAL-2099-pypi","affected":[{"package":{"ecosystem":"PyPI","name":"Private_Pkg"},"versions":["1.1"]}]}`,
		`{"id":"GHSA-pypi-crit","database_specific":{"severity":"CRITICAL"},"affected":[{"package":{"ecosystem":"PyPI","name":"private-pkg"},"versions":["1.0"]}]}`)
	srv := newServer(proxy.Options{Store: st, MetaPrefix: "mirror-meta", DistPrefix: "mirror-dist",
		Mirrors: []proxy.Mirror{{Name: "private", Type: "pypi", Hosted: true, TTL: time.Minute,
			Advisories: &policy.AdvisoriesConfig{Block: []string{"malware", "critical"}}}},
		Tokens: hostedTokens(t), OSVRefresh: 100 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	hsURL := mirrortest.ServeProxy(t, srv)
	base := hsURL + "/private"
	files := map[string]string{}
	for _, v := range []string{"1.0", "1.1"} {
		filename, whl := wheel(t, "Private.Pkg", v, ">=3.8")
		ct, body := twineForm("Private.Pkg", v, filename, whl)
		if resp, msg := send(t, http.MethodPost, base+"/legacy", writeSecret, ct, body); resp.StatusCode != 200 {
			t.Fatalf("upload %s: %d %s", v, resp.StatusCode, msg)
		}
		files[v] = filename
	}
	_, page := authGet(t, base+"/simple/private-pkg/")
	urlOf := func(filename string) string {
		i := strings.Index(page, filename+"#")
		j := strings.LastIndex(page[:max(i, 0)], `href="`)
		if i < 0 || j < 0 {
			t.Fatalf("%s not on the page:\n%s", filename, page)
		}
		pageURL, _ := url.Parse(base + "/simple/private-pkg/")
		ref, _ := url.Parse(page[j+len(`href="`) : i+len(filename)])
		return pageURL.ResolveReference(ref).String()
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, body := authGet(t, urlOf(files["1.1"]))
		if resp.StatusCode == http.StatusForbidden && strings.Contains(body, "MAL-2099-pypi") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a published file that known malware matches: %d %s, want 403 naming MAL-2099-pypi", resp.StatusCode, body)
		}
	}
	if resp, body := authGet(t, urlOf(files["1.0"])); resp.StatusCode != http.StatusOK {
		t.Errorf("a published file a (non-malware) critical advisory names: %d %s, want 200", resp.StatusCode, body)
	}
}

// A document filtered with advisory data is replayed like one filtered by
// a cooldown, and new advisory data ends its replays at once.
func TestAdvisoryFilteredDocumentsAreReplayedUntilTheDataChanges(t *testing.T) {
	up := fakenpm.New()
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	st, _ := local.New(t.TempDir())
	importOSV(t, st, "npm", `{"id":"MAL-1","affected":[{"package":{"ecosystem":"npm","name":"left-pad"},"versions":["1.3.0"]}]}`)
	srv := newServer(proxy.Options{Store: st, MetaPrefix: "mirror-meta", DistPrefix: "mirror-dist",
		Mirrors: []proxy.Mirror{{Name: "npm", Type: "npm", URL: up.URL(), TTL: time.Hour, NotFoundTTL: time.Second,
			Advisories: &policy.AdvisoriesConfig{Block: []string{"malware"}}}},
		OSVRefresh: 100 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	root := mirrortest.ServeProxy(t, srv)
	base := root + "/npm"
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, body, _ := do(t, "GET", base+"/left-pad"); strings.Contains(string(body), "MAL-1") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the advisory data was never loaded")
		}
	}
	for i := 0; i < 5; i++ {
		do(t, "GET", base+"/left-pad")
	}
	if !mirrortest.StdHTTP() {
		_, m, _ := do(t, "GET", root+"/metrics")
		if strings.Contains(string(m), "mirror_replayed_responses_total 0\n") {
			t.Errorf("a packument filtered with advisory data was never replayed")
		}
	}
	importOSV(t, st, "npm", `{"id":"MAL-1","affected":[{"package":{"ecosystem":"npm","name":"left-pad"},"versions":["1.3.0"]}]}`,
		`{"id":"MAL-2","affected":[{"package":{"ecosystem":"npm","name":"left-pad"},"versions":["1.2.0"]}]}`)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, body, _ := do(t, "GET", base+"/left-pad"); strings.Contains(string(body), "MAL-2") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("new advisory data did not end the replays of the filtered packument")
		}
	}
}
