package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/fakenpm"
	"github.com/mirror-proxy/mirror-proxy/internal/fakepackagist"
	"github.com/mirror-proxy/mirror-proxy/internal/fakepypi"
	"github.com/mirror-proxy/mirror-proxy/internal/testenv"
)

// Under a 3-day cooldown the real composer and pip resolve the newest
// version older than 3 days; an exempt package resolves its newest one;
// the file of a too-young version is a 403 with the date.
func TestCooldownWithRealClients(t *testing.T) {
	testenv.Deadline(t, 2*time.Minute)
	if _, ok := testenv.LookPath("composer"); !ok {
		testenv.Missing(t, "composer", "apt-get install composer php-cli php-zip unzip")
	}
	now := time.Now()
	pack := fakepackagist.New()
	pack.Publish("acme/fresh", fakepackagist.Version{Version: "1.0.0", Ref: strings.Repeat("a", 40), Time: now.Add(-10 * 24 * time.Hour)})
	pack.Publish("acme/fresh", fakepackagist.Version{Version: "1.1.0", Ref: strings.Repeat("b", 40), Time: now.Add(-time.Hour)})
	pack.Publish("trusted/fresh", fakepackagist.Version{Version: "1.0.0", Ref: strings.Repeat("c", 40), Time: now.Add(-10 * 24 * time.Hour)})
	pack.Publish("trusted/fresh", fakepackagist.Version{Version: "1.1.0", Ref: strings.Repeat("d", 40), Time: now.Add(-time.Hour)})
	if err := pack.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer pack.Stop()
	py := fakepypi.New(false)
	py.Publish("fresh-pkg", fakepypi.Release{Version: "1.0", Uploaded: now.Add(-10 * 24 * time.Hour)})
	py.Publish("fresh-pkg", fakepypi.Release{Version: "1.1", Uploaded: now.Add(-time.Hour)})
	if err := py.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer py.Stop()
	px := startProxy(t, map[string]string{
		"STORAGE_LOCAL_DIR": t.TempDir(),
		"COOLDOWN":          "3d",
		"MIRRORS": `[{"name":"packagist","type":"composer","url":"` + pack.URL() + `","cooldownExempt":["trusted/*"]},` +
			`{"name":"pypi","type":"pypi","url":"` + py.IndexURL() + `"}]`,
	})

	dir := composerProject(t, px.URL+"/packagist", nil)
	mustComposer(t, dir, "require", "acme/fresh:^1.0", "trusted/fresh:^1.0")
	lock, _ := os.ReadFile(filepath.Join(dir, "composer.lock"))
	l := string(lock)
	if !strings.Contains(l, `"name": "acme/fresh",`+"\n"+`            "version": "1.0.0"`) || !strings.Contains(l, `"name": "trusted/fresh",`+"\n"+`            "version": "1.1.0"`) {
		t.Errorf("composer.lock: want acme/fresh 1.0.0 (cooldown) and trusted/fresh 1.1.0 (exempt):\n%s", l)
	}

	target := t.TempDir()
	mustPip(t, px.URL+"/pypi/simple/", "install", "--target", target, "fresh-pkg")
	if got := installed(t, target); !strings.Contains(got, "fresh_pkg-1.0") {
		t.Errorf("pip installed %q, want fresh_pkg-1.0", got)
	}
	code, _, body := get(t, px.URL+"/packagist/zipball/acme/fresh/1.1.0.0/ref"+strings.Repeat("b", 40)+".zip")
	if code != 403 || !strings.Contains(string(body), now.Add(71*time.Hour).UTC().Format("2006-01-02")) {
		t.Errorf("dist of the young version: %d %s", code, body)
	}
}

// Strict mode and a denied version with the real clients: composer and
// pip skip the denied version; an unlisted package is refused with the
// message, and a pinned install of the denied version fails with the deny
// rule in the client's output.
func TestAllowAndDenyWithRealClients(t *testing.T) {
	testenv.Deadline(t, 2*time.Minute)
	if _, ok := testenv.LookPath("composer"); !ok {
		testenv.Missing(t, "composer", "apt-get install composer php-cli php-zip unzip")
	}
	pack := fakepackagist.New()
	if err := pack.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer pack.Stop()
	py := fakepypi.New(false)
	py.Publish("two-versions", fakepypi.Release{Version: "1.0"})
	py.Publish("two-versions", fakepypi.Release{Version: "1.1"})
	if err := py.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer py.Stop()
	storageDir := t.TempDir()
	mirrors := func(policies bool) string {
		composerRules, pypiRules := `,"allow":["acme/*"],"deny":["acme/foo:1.1.0"]`, `,"deny":["two-versions==1.1"]`
		if !policies {
			composerRules, pypiRules = "", ""
		}
		return `[{"name":"packagist","type":"composer","url":"` + pack.URL() + `"` + composerRules + `},` +
			`{"name":"pypi","type":"pypi","url":"` + py.IndexURL() + `"` + pypiRules + `}]`
	}
	px := startProxy(t, map[string]string{"STORAGE_LOCAL_DIR": storageDir, "MIRRORS": mirrors(true)})
	dir := composerProject(t, px.URL+"/packagist", nil)
	mustComposer(t, dir, "require", "acme/foo:^1.0")
	lock, _ := os.ReadFile(filepath.Join(dir, "composer.lock"))
	if !strings.Contains(string(lock), `"name": "acme/foo",`+"\n"+`            "version": "1.0.0"`) {
		t.Errorf("composer.lock: want acme/foo 1.0.0 (1.1.0 denied):\n%s", lock)
	}
	code, _, body := get(t, px.URL+"/packagist/p2/other/pkg.json")
	if code != 404 || !strings.Contains(string(body), "not approved") {
		t.Errorf("unlisted package: %d %s", code, body)
	}
	// The reasons reach the user in Composer's own output.
	out, err := composer(t, composerProject(t, px.URL+"/packagist", nil), "require", "other/pkg:^1.0")
	if err == nil || !strings.Contains(out, "other/pkg is not approved on this mirror") {
		t.Errorf("composer require of an unlisted package: %v\n%s", err, tailLines(out, 15))
	}
	out, err = composer(t, composerProject(t, px.URL+"/packagist", nil), "require", "acme/foo:1.1.0")
	if err == nil || !strings.Contains(out, "acme/foo 1.1.0 is denied by the mirror's policy") {
		t.Errorf("composer require of the denied version: %v\n%s", err, tailLines(out, 15))
	}
	// A lock file made before the rule (here: by a proxy without it, on the
	// same storage) pins the denied version: its dist is refused, and
	// Composer prints why. Composer then tries the lock file's own dist URL,
	// the upstream's: where clients cannot reach the upstream (stopped
	// here), the install fails.
	open := startProxy(t, map[string]string{"STORAGE_LOCAL_DIR": storageDir, "MIRRORS": mirrors(false)})
	pinned := composerProject(t, open.URL+"/packagist", nil)
	mustComposer(t, pinned, "require", "--no-install", "acme/foo:1.1.0")
	for _, f := range []string{"composer.json", "composer.lock"} {
		b, _ := os.ReadFile(filepath.Join(pinned, f))
		os.WriteFile(filepath.Join(pinned, f), []byte(strings.ReplaceAll(string(b), open.URL, px.URL)), 0o644)
	}
	pack.Stop()
	out, err = composer(t, pinned, "install")
	if err == nil || !strings.Contains(out, "acme/foo 1.1.0 is denied by the mirror's policy") {
		t.Errorf("composer install of a lock file with the denied version: %v\n%s", err, tailLines(out, 15))
	}

	target := t.TempDir()
	mustPip(t, px.URL+"/pypi/simple/", "install", "--target", target, "two-versions")
	if got := installed(t, target); !strings.Contains(got, "two_versions-1.0") {
		t.Errorf("pip installed %q, want two_versions-1.0 (1.1 denied)", got)
	}
	out, err = pip(t, px.URL+"/pypi/simple/", "install", "--target", t.TempDir(), "two-versions==1.1")
	if err == nil || !strings.Contains(out, "two-versions 1.1 is denied by the mirror's policy") {
		t.Errorf("a pinned pip install of the denied version: %v\n%s", err, tailLines(out, 10))
	}
}

// A dated snapshot URL installs the versions of that date with composer,
// pip and npm; a date before the first version gives the clients'
// ordinary "no matching version" error.
func TestSnapshotsWithRealClients(t *testing.T) {
	testenv.Deadline(t, 3*time.Minute)
	if _, ok := testenv.LookPath("composer"); !ok {
		testenv.Missing(t, "composer", "apt-get install composer php-cli php-zip unzip")
	}
	jan, jun := time.Date(2025, 1, 10, 12, 0, 0, 0, time.UTC), time.Date(2025, 6, 20, 12, 0, 0, 0, time.UTC)
	pack := fakepackagist.New()
	pack.Publish("acme/dated", fakepackagist.Version{Version: "1.0.0", Ref: strings.Repeat("1", 40), Time: jan})
	pack.Publish("acme/dated", fakepackagist.Version{Version: "1.1.0", Ref: strings.Repeat("2", 40), Time: jun})
	if err := pack.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer pack.Stop()
	py := fakepypi.New(false)
	py.Publish("dated-pkg", fakepypi.Release{Version: "1.0", Uploaded: jan})
	py.Publish("dated-pkg", fakepypi.Release{Version: "1.1", Uploaded: jun})
	if err := py.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer py.Stop()
	npmUp := fakenpm.New()
	npmUp.Publish("dated", fakenpm.Version{Version: "1.0.0", Time: jan})
	npmUp.Publish("dated", fakenpm.Version{Version: "1.1.0", Time: jun})
	if err := npmUp.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer npmUp.Stop()
	px := startProxy(t, map[string]string{
		"STORAGE_LOCAL_DIR": t.TempDir(),
		"MIRRORS": `[{"name":"packagist","type":"composer","url":"` + pack.URL() + `"},` +
			`{"name":"pypi","type":"pypi","url":"` + py.IndexURL() + `"},{"name":"npm","type":"npm","url":"` + npmUp.URL() + `"}]`,
	})

	dir := composerProject(t, px.URL+"/packagist/@2025-06-01", nil)
	mustComposer(t, dir, "require", "acme/dated:^1.0")
	lock, _ := os.ReadFile(filepath.Join(dir, "composer.lock"))
	if !strings.Contains(string(lock), `"version": "1.0.0"`) || strings.Contains(string(lock), `"version": "1.1.0"`) {
		t.Errorf("composer under the snapshot of 2025-06-01:\n%s", lock)
	}
	early := composerProject(t, px.URL+"/packagist/@2024-12-31", nil)
	if out, err := composer(t, early, "require", "acme/dated:^1.0"); err == nil || !strings.Contains(out, "acme/dated") {
		t.Errorf("composer under a snapshot before the first version: %v\n%s", err, tailLines(out, 10))
	}

	target := t.TempDir()
	mustPip(t, px.URL+"/pypi/@2025-06-01/simple/", "install", "--target", target, "dated-pkg")
	if got := installed(t, target); !strings.Contains(got, "dated_pkg-1.0") {
		t.Errorf("pip under the snapshot installed %q, want dated_pkg-1.0", got)
	}
	if out, err := pip(t, px.URL+"/pypi/@2024-12-31/simple/", "install", "--target", t.TempDir(), "dated-pkg"); err == nil || !strings.Contains(out, "No matching distribution") {
		t.Errorf("pip under a snapshot before the first version: %v\n%s", err, tailLines(out, 10))
	}

	app := t.TempDir()
	os.WriteFile(filepath.Join(app, "package.json"), []byte(`{"name":"app","version":"1.0.0","private":true,"dependencies":{"dated":"^1.0.0"}}`), 0o644)
	mustNpm(t, app, px.URL+"/npm/@2025-06-01/", t.TempDir(), "install", "--no-audit")
	b, err := os.ReadFile(filepath.Join(app, "node_modules", "dated", "package.json"))
	if err != nil || !strings.Contains(string(b), `"version": "1.0.0"`) {
		t.Errorf("npm under the snapshot installed %s (%v), want 1.0.0", b, err)
	}
	lockJSON, _ := os.ReadFile(filepath.Join(app, "package-lock.json"))
	if !strings.Contains(string(lockJSON), px.URL+"/npm/@2025-06-01/dated/-/dated-1.0.0.tgz") {
		t.Errorf("package-lock.json does not keep the snapshot URL:\n%s", lockJSON)
	}
}
