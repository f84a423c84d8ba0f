package e2e

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/fakenpm"
	"github.com/mirror-proxy/mirror-proxy/internal/fakepackagist"
	"github.com/mirror-proxy/mirror-proxy/internal/fakepypi"
	"github.com/mirror-proxy/mirror-proxy/internal/testenv"
)

// An advisories policy with OSV data imported by hand (air-gapped: no
// OSV_URL): npm install resolves past a malicious version to the one
// before, a pinned install of it fails with the advisory's id in npm's
// output, and a second replica on the same bucket blocks the same.
func TestNpmAdvisoriesBlockMalware(t *testing.T) {
	testenv.Deadline(t, 4*time.Minute)
	if _, ok := testenv.LookPath("npm"); !ok {
		testenv.Missing(t, "npm", "node 20's npm")
	}
	s3 := testenv.StartS3(t)
	bucket := s3.NewBucket(t)
	up := fakenpm.New()
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	env := map[string]string{
		"STORAGE_SOURCE": "s3", "STORAGE_AWS_BUCKET": bucket, "STORAGE_AWS_ARGS": s3.ArgsJSON(),
		"MIRRORS":     `[{"name":"npm","type":"npm","url":"` + up.URL() + `","advisories":{"block":["malware","critical"]}}]`,
		"OSV_REFRESH": "500ms", "OSV_URL": "",
	}
	// OSV data: left-pad 1.3.0 is malware (its newest version).
	out := osvImport(t, env, "npm",
		map[string]any{"id": "MAL-2099-7", "summary": "Malicious code in left-pad",
			"affected": []any{map[string]any{"package": map[string]string{"ecosystem": "npm", "name": "left-pad"}, "versions": []string{"1.3.0"}}}},
		map[string]any{"id": "GHSA-test-high", "summary": "A high one in left-pad 1.2.0",
			"database_specific": map[string]string{"severity": "HIGH"},
			"affected":          []any{map[string]any{"package": map[string]string{"ecosystem": "npm", "name": "left-pad"}, "versions": []string{"1.2.0"}}}})
	if !strings.Contains(out, "2 npm records") {
		t.Fatalf("osv import: %s", out)
	}

	for i, name := range []string{"first replica", "second replica"} {
		px := startProxy(t, env)
		registry := px.URL + "/npm/"
		// The data loads off the request path: wait for it. The version
		// stays listed, deprecated with the advisory, and latest moves
		// off it.
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			_, _, body := get(t, registry+"left-pad")
			if bytes.Contains(body, []byte("MAL-2099-7")) && !bytes.Contains(body, []byte(`"latest":"1.3.0"`)) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the packument does not mark the malicious version:\n%s", name, body)
			}
		}
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "package.json"), []byte(`{"name":"app","version":"1.0.0"}`), 0o644)
		cache := t.TempDir()
		mustNpm(t, dir, registry, cache, "install", "left-pad@^1.2.0") // a range 1.3.0 satisfies too
		pj, _ := os.ReadFile(filepath.Join(dir, "node_modules", "left-pad", "package.json"))
		if !bytes.Contains(pj, []byte(`"1.2.0"`)) {
			t.Errorf("%s: npm install left-pad installed %s, want 1.2.0 (1.3.0 is malware)", name, pj)
		}
		if i == 0 {
			out, err := npmRun(t, t.TempDir(), registry, t.TempDir(), "install", "left-pad@1.3.0")
			t.Logf("npm install left-pad@1.3.0:\n%s", tailLines(out, 12))
			if err == nil || !strings.Contains(out, "MAL-2099-7") {
				t.Errorf("npm install left-pad@1.3.0 succeeded or did not name the advisory: %v\n%s", err, tailLines(out, 20))
			}
			if _, _, m := get(t, px.URL+"/metrics"); !bytes.Contains(m, []byte(`mirror_osv_records{ecosystem="npm"} 2`)) {
				t.Errorf("metrics lack the OSV records loaded")
			}
			// Imported by hand more than 3 x OSV_REFRESH (500ms) ago: old,
			// a warning, and still ready.
			if code, _, rz := get(t, px.URL+"/readyz"); code != 200 || !bytes.Contains(rz, []byte(`"osv_npm":"warning: the data is`)) ||
				!bytes.Contains(rz, []byte(`"status":"ready"`)) {
				t.Errorf("readyz: %d %s", code, rz)
			}
			tgz := px.URL + "/npm/left-pad/-/left-pad-1.3.0.tgz"
			code, _, body := get(t, tgz)
			if code != 403 || !strings.Contains(string(body), "MAL-2099-7") {
				t.Errorf("the malicious tarball: %d %s", code, body)
			}
		}
		if i == 1 {
			// npm audit with the upstream down: answered from the mirror's
			// advisory data (GHSA-test-high is not blocked, only reported).
			up.Stop()
			out, err := npmRun(t, dir, registry, cache, "audit", "--json")
			if err == nil || !strings.Contains(out, "GHSA-test-high") {
				t.Errorf("npm audit with the upstream down does not report GHSA-test-high (%v):\n%s", err, tailLines(out, 30))
			}
		}
		px.Stop()
	}
}

// pip installs past a version a critical advisory names; the same data in
// report mode, or with the advisory ignored, installs it.
func TestPipAdvisoriesSkipCritical(t *testing.T) {
	testenv.Deadline(t, 4*time.Minute)
	if out, err := exec.Command("python3", "-m", "pip", "--version").CombinedOutput(); err != nil {
		testenv.Missing(t, "python3 -m pip", "apt-get install python3-pip: "+string(out))
	}
	s3 := testenv.StartS3(t)
	up := fakepypi.NewWith([]fakepypi.Project{{Name: "vuln-pkg", Releases: []fakepypi.Release{{Version: "1.0"}, {Version: "1.1"}}}}, false)
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	mirrors := `[{"name":"pypi","type":"pypi","url":"` + up.IndexURL() + `","advisories":{"block":["critical"]}},` +
		`{"name":"report","type":"pypi","url":"` + up.IndexURL() + `","advisories":{"block":["critical"],"mode":"report"}},` +
		`{"name":"ignoring","type":"pypi","url":"` + up.IndexURL() + `","advisories":{"block":["critical"],"ignore":["CVE-2099-42"]}}]`
	env := map[string]string{"STORAGE_SOURCE": "s3", "STORAGE_AWS_BUCKET": s3.NewBucket(t), "STORAGE_AWS_ARGS": s3.ArgsJSON(),
		"MIRRORS": mirrors, "OSV_REFRESH": "500ms", "OSV_URL": ""}
	osvImport(t, env, "PyPI", map[string]any{"id": "PYSEC-2099-1", "aliases": []string{"CVE-2099-42"}, "summary": "Remote code execution in vuln-pkg",
		"database_specific": map[string]string{"severity": "CRITICAL"},
		"affected": []any{map[string]any{"package": map[string]string{"ecosystem": "PyPI", "name": "Vuln_Pkg"},
			"ranges": []any{map[string]any{"type": "ECOSYSTEM", "events": []any{map[string]string{"introduced": "1.1"}, map[string]string{"fixed": "1.2"}}}}}}})
	px := startProxy(t, env)
	waitOSVLoaded(t, px, "PyPI")
	for mirror, want := range map[string]string{"pypi": "vuln_pkg-1.0", "report": "vuln_pkg-1.1", "ignoring": "vuln_pkg-1.1"} {
		dir := t.TempDir()
		mustPip(t, px.URL+"/"+mirror+"/simple/", "install", "--target", dir, "vuln-pkg")
		if got := installed(t, dir); got != want {
			t.Errorf("%s: pip installed %q, want %q", mirror, got, want)
		}
	}
	if !strings.Contains(px.Log(), "PYSEC-2099-1") {
		t.Errorf("report mode logged nothing of PYSEC-2099-1")
	}
}

// composer update skips a version a critical advisory names, and composer
// audit lists the mirror's own advisories beside the upstream's, and
// alone with the upstream down.
func TestComposerAdvisoriesSkipCritical(t *testing.T) {
	testenv.Deadline(t, 4*time.Minute)
	if _, ok := testenv.LookPath("composer"); !ok {
		testenv.Missing(t, "composer", "apt-get install composer php-cli php-zip unzip")
	}
	s3 := testenv.StartS3(t)
	up := fakepackagist.New()
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	env := map[string]string{"STORAGE_SOURCE": "s3", "STORAGE_AWS_BUCKET": s3.NewBucket(t), "STORAGE_AWS_ARGS": s3.ArgsJSON(),
		"MIRRORS":     `[{"name":"packagist","type":"composer","url":"` + up.URL() + `","advisories":{"block":["critical"]}}]`,
		"OSV_REFRESH": "500ms", "OSV_URL": ""}
	osvImport(t, env, "Packagist", map[string]any{"id": "GHSA-comp-0001", "summary": "A critical one in acme/foo 1.1",
		"database_specific": map[string]string{"severity": "CRITICAL"},
		"affected": []any{map[string]any{"package": map[string]string{"ecosystem": "Packagist", "name": "Acme/Foo"},
			"ranges": []any{map[string]any{"type": "ECOSYSTEM", "events": []any{map[string]string{"introduced": "1.1.0"}, map[string]string{"fixed": "1.2.0"}}}}}}},
		map[string]any{"id": "GHSA-comp-0002", "aliases": []string{"CVE-2099-2222"}, "summary": "A medium one in acme/foo before 1.1",
			"published": "2026-01-02T03:04:05Z", "database_specific": map[string]string{"severity": "MODERATE"},
			"affected": []any{map[string]any{"package": map[string]string{"ecosystem": "Packagist", "name": "acme/foo"},
				"ranges": []any{map[string]any{"type": "ECOSYSTEM", "events": []any{map[string]string{"introduced": "0"}, map[string]string{"fixed": "1.1.0"}}}}}}})
	px := startProxy(t, env)
	waitOSVLoaded(t, px, "Packagist")
	dir := composerProject(t, px.URL+"/packagist", nil)
	out := mustComposer(t, dir, "require", "acme/foo:^1.0")
	b, _ := os.ReadFile(filepath.Join(dir, "vendor/acme/foo/src/Version.php"))
	if !bytes.Contains(b, []byte("1.0.0")) {
		t.Errorf("composer installed %q, want acme/foo 1.0.0 (1.1.0 has a critical advisory)\n%s", b, tailLines(out, 20))
	}
	// The medium advisory blocks nothing but composer audit reports it,
	// merged with the upstream's own (fakepackagist advises acme/foo
	// >=1.0.0,<2.0.0).
	out = composerAudit(t, dir)
	for _, want := range []string{"GHSA-comp-0002", "CVE-2099-2222", fakepackagist.AdvisoryID} {
		if !strings.Contains(out, want) {
			t.Errorf("composer audit, upstream up: no %s:\n%s", want, tailLines(out, 40))
		}
	}
	if strings.Contains(out, "GHSA-comp-0001") {
		t.Errorf("composer audit lists GHSA-comp-0001, which does not affect the installed 1.0.0:\n%s", tailLines(out, 40))
	}
	up.Stop()
	out = composerAudit(t, dir)
	if !strings.Contains(out, "GHSA-comp-0002") || strings.Contains(out, fakepackagist.AdvisoryID) {
		t.Errorf("composer audit, upstream down: want GHSA-comp-0002 from the mirror's data alone:\n%s", tailLines(out, 40))
	}
}

// osvImport stores an OSV export of records for ecosystem with the
// binary's osv import, configured by env, and returns what it printed.
func osvImport(t *testing.T, env map[string]string, ecosystem string, records ...map[string]any) string {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, r := range records {
		w, _ := zw.Create(r["id"].(string) + ".json")
		json.NewEncoder(w).Encode(r)
	}
	zw.Close()
	zipPath := filepath.Join(t.TempDir(), "all.zip")
	os.WriteFile(zipPath, buf.Bytes(), 0o644)
	imp := exec.Command(proxyBin, "osv", "import", "--ecosystem", ecosystem, zipPath)
	imp.Env = append(os.Environ(), "AWS_EC2_METADATA_DISABLED=true")
	for k, v := range env {
		imp.Env = append(imp.Env, k+"="+v)
	}
	out, err := imp.CombinedOutput()
	if err != nil {
		t.Fatalf("osv import: %v\n%s", err, out)
	}
	return string(out)
}

// waitOSVLoaded waits until px has loaded the ecosystem's OSV data.
func waitOSVLoaded(t *testing.T, px *proc, ecosystem string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		// ok, or a warning that the data is old (OSV_REFRESH is short here)
		if _, _, rz := get(t, px.URL+"/readyz"); bytes.Contains(rz, []byte(`"osv_`+ecosystem+`":"`)) &&
			!bytes.Contains(rz, []byte(`"osv_`+ecosystem+`":"no data`)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the %s OSV data was not loaded", ecosystem)
		}
	}
}

// osv import refuses an export with a bad record or a truncated zip in
// one line naming the file and the record, and leaves the data stored
// before as it was.
func TestOSVImportRefusesBadExports(t *testing.T) {
	data := t.TempDir()
	env := map[string]string{"STORAGE_LOCAL_DIR": data}
	osvImport(t, env, "npm", map[string]any{"id": "MAL-good", "affected": []any{map[string]any{
		"package": map[string]string{"ecosystem": "npm", "name": "x"}, "versions": []string{"1.0.0"}}}})
	stored := filepath.Join(data, "mirror-meta", "osv", "npm", "all.zip")
	before, err := os.ReadFile(stored)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("GHSA-good.json")
	w.Write([]byte(`{"id":"GHSA-good","affected":[]}`))
	w, _ = zw.Create("GHSA-bad.json")
	w.Write([]byte(`{"id":"GHSA-bad","affected":[`))
	zw.Close()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.zip")
	os.WriteFile(bad, buf.Bytes(), 0o644)
	truncated := filepath.Join(dir, "truncated.zip")
	os.WriteFile(truncated, buf.Bytes()[:buf.Len()/2], 0o644)
	for file, want := range map[string]string{bad: "record GHSA-bad.json", truncated: "not a valid OSV export"} {
		cmd := exec.Command(proxyBin, "osv", "import", "--ecosystem", "npm", file)
		cmd.Env = append(os.Environ(), "STORAGE_LOCAL_DIR="+data)
		out, err := cmd.CombinedOutput()
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		last := lines[len(lines)-1]
		if err == nil || !strings.Contains(last, file) || !strings.Contains(last, want) {
			t.Errorf("osv import %s: %v, last line %q; want an error naming the file and %q\n%s", filepath.Base(file), err, last, want, out)
		}
	}
	if after, _ := os.ReadFile(stored); !bytes.Equal(before, after) {
		t.Errorf("a refused import changed the stored export")
	}
}
