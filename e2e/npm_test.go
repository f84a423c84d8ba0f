package e2e

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/fakenpm"
	"github.com/mirror-proxy/mirror-proxy/internal/testenv"
)

// npmRun runs the machine's npm in dir against registry, with a cache of
// its own and no user configuration.
func npmRun(t *testing.T, dir, registry, cache string, args ...string) (string, error) {
	t.Helper()
	return npmWith(t, "", dir, registry, cache, args...)
}

// npmWith is npmRun with npmrc as the user configuration (tokens).
func npmWith(t *testing.T, npmrc, dir, registry, cache string, args ...string) (string, error) {
	t.Helper()
	userconfig := filepath.Join(t.TempDir(), "npmrc")
	if err := os.WriteFile(userconfig, []byte(npmrc), 0o600); err != nil {
		t.Fatal(err)
	}
	bin, ok := testenv.LookPath("npm")
	if !ok {
		testenv.Missing(t, "npm", "node 20's npm")
	}
	cmd := exec.Command(bin, append(args, "--registry", registry, "--cache", cache, "--no-fund", "--no-update-notifier",
		"--fetch-retries", "0", "--loglevel", "http")...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "NO_UPDATE_NOTIFIER=1", "npm_config_userconfig="+userconfig)
	return output(t, cmd)
}

func mustNpm(t *testing.T, dir, registry, cache string, args ...string) string {
	t.Helper()
	out, err := npmRun(t, dir, registry, cache, args...)
	if err != nil {
		t.Fatalf("npm %v: %v\n%s", args, err, tailLines(out, 40))
	}
	return out
}

// The real npm installs a project with plain and scoped dependencies
// through the proxy on S3, writes a lock file that leads to the proxy,
// audits through it, and installs again from the lock with an empty cache
// while the upstream is down.
func TestNpmMirrorOnS3(t *testing.T) {
	testenv.Deadline(t, 3*time.Minute)
	s3 := testenv.StartS3(t)
	bucket := s3.NewBucket(t)
	up := fakenpm.New()
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	px := startProxy(t, map[string]string{
		"STORAGE_SOURCE": "s3", "STORAGE_AWS_BUCKET": bucket, "STORAGE_AWS_ARGS": s3.ArgsJSON(),
		"MIRRORS": `[{"name":"npm","type":"npm","url":"` + up.URL() + `"}]`,
	})
	registry := px.URL + "/npm/"
	pkg := `{"name":"app","version":"1.0.0","private":true,"dependencies":{"is-even":"^1.0.0","@acme/util":"^2.0.0"}}`

	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "package.json"), []byte(pkg), 0o644)
	mustNpm(t, dir, registry, t.TempDir(), "install", "--no-audit")
	for _, m := range []string{"is-even", "is-odd", "@acme/util", "left-pad"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", m, "package.json")); err != nil {
			t.Errorf("%s not installed: %v", m, err)
		}
	}
	lock, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil || !strings.Contains(string(lock), `"resolved": "`+px.URL+"/npm/@acme/util/-/util-2.0.0.tgz") ||
		strings.Contains(string(lock), up.URL()) {
		t.Errorf("package-lock.json does not lead to the proxy:\n%s", lock)
	}

	t.Run("npm audit reaches the upstream", func(t *testing.T) {
		before := up.Audits()
		out, _ := npmRun(t, dir, registry, t.TempDir(), "audit")
		if up.Audits() == before {
			t.Errorf("npm audit made no request upstream:\n%s", tailLines(out, 20))
		}
	})

	t.Run("npm ci from the lock, empty cache, upstream down", func(t *testing.T) {
		up.Stop()
		fresh := t.TempDir()
		os.WriteFile(filepath.Join(fresh, "package.json"), []byte(pkg), 0o644)
		os.WriteFile(filepath.Join(fresh, "package-lock.json"), lock, 0o644)
		mustNpm(t, fresh, registry, t.TempDir(), "ci", "--no-audit")
		if _, err := os.Stat(filepath.Join(fresh, "node_modules", "@acme", "util", "index.js")); err != nil {
			t.Errorf("npm ci did not install @acme/util: %v", err)
		}
	})
}

// npm publish of a private scoped package to a hosted npm mirror with a
// token, then an install of it next to mirrored packages; a higher version
// of the same name published upstream later is never seen; npm unpublish
// removes a version.
func TestNpmPublishPrivatePackage(t *testing.T) {
	testenv.Deadline(t, 3*time.Minute)
	up := fakenpm.New()
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	px := startProxy(t, map[string]string{
		"STORAGE_LOCAL_DIR": t.TempDir(),
		"MIRRORS":           `[{"name":"npm","type":"npm","url":"` + up.URL() + `","hosted":true}]`,
		"AUTH_TOKENS":       hostedTokensJSON(),
	})
	registry := px.URL + "/npm/"
	host := strings.TrimPrefix(px.URL, "http://")
	writeRC := "//" + host + "/npm/:_authToken=" + e2eWrite + "\n"
	readRC := "//" + host + "/npm/:_authToken=" + e2eRead + "\n"

	publishDirWith := func(version, code string) string {
		d := t.TempDir()
		os.WriteFile(filepath.Join(d, "package.json"), []byte(`{"name":"@acme/private","version":"`+version+`","main":"index.js","dependencies":{"left-pad":"^1.2.0"}}`), 0o644)
		os.WriteFile(filepath.Join(d, "index.js"), []byte(code), 0o644)
		return d
	}
	publishDir := func(version string) string { return publishDirWith(version, "module.exports = '"+version+"';\n") }
	for _, v := range []string{"1.0.0", "1.1.0"} {
		mustNpmWith(t, writeRC, publishDir(v), registry, t.TempDir(), "publish")
	}
	if out, err := npmWith(t, readRC, publishDir("1.2.0"), registry, t.TempDir(), "publish"); err == nil {
		t.Errorf("a read-only token published:\n%s", tailLines(out, 10))
	}
	// The same tarball again is a retry and succeeds; other contents under
	// 1.1.0 are refused with npm's own message.
	if out, err := npmWith(t, writeRC, publishDir("1.1.0"), registry, t.TempDir(), "publish"); err != nil {
		t.Errorf("publishing 1.1.0 again, the same tarball: %v\n%s", err, tailLines(out, 10))
	}
	if out, err := npmWith(t, writeRC, publishDirWith("1.1.0", "module.exports = 'other';\n"), registry, t.TempDir(), "publish"); err == nil || !strings.Contains(out, "previously published") {
		t.Errorf("publishing over 1.1.0 with other contents: %v\n%s", err, tailLines(out, 10))
	}

	// The upstream now has the same name, higher.
	up.Publish("@acme/private", fakenpm.Version{Version: "9.0.0"})
	app := t.TempDir()
	os.WriteFile(filepath.Join(app, "package.json"), []byte(`{"name":"app","version":"1.0.0","private":true,"dependencies":{"@acme/private":"*","is-even":"^1.0.0"}}`), 0o644)
	mustNpmWith(t, readRC, app, registry, t.TempDir(), "install", "--no-audit")
	b, err := os.ReadFile(filepath.Join(app, "node_modules", "@acme", "private", "index.js"))
	if err != nil || !strings.Contains(string(b), "1.1.0") {
		t.Errorf("installed @acme/private: %q %v, want 1.1.0", b, err)
	}
	for _, m := range []string{"left-pad", "is-even", "is-odd"} {
		if _, err := os.Stat(filepath.Join(app, "node_modules", m)); err != nil {
			t.Errorf("mirrored %s not installed: %v", m, err)
		}
	}
	if out, err := npmWith(t, readRC, app, registry, t.TempDir(), "install", "--no-audit", "@acme/private@9.0.0"); err == nil {
		t.Errorf("the upstream's 9.0.0 of a private name was installed:\n%s", tailLines(out, 10))
	}

	mustNpmWith(t, writeRC, t.TempDir(), registry, t.TempDir(), "unpublish", "@acme/private@1.1.0", "--force")
	out := mustNpmWith(t, readRC, t.TempDir(), registry, t.TempDir(), "view", "@acme/private", "versions", "--json")
	if !strings.Contains(out, "1.0.0") || strings.Contains(out, "1.1.0") || strings.Contains(out, "9.0.0") {
		t.Errorf("versions after unpublish: %s", out)
	}
}

func mustNpmWith(t *testing.T, npmrc, dir, registry, cache string, args ...string) string {
	t.Helper()
	out, err := npmWith(t, npmrc, dir, registry, cache, args...)
	if err != nil {
		t.Fatalf("npm %v: %v\n%s", args, err, tailLines(out, 40))
	}
	return out
}

// The full packument of "victim.abbreviated" (anyone can publish that name
// upstream) asked for once never becomes the abbreviated packument of
// "victim": npm's own fetcher (pacote, as pnpm, yarn and npm's
// lock-inflate path ask: the abbreviated form) gets victim's versions.
func TestNpmPackumentFormsNeverShareAKey(t *testing.T) {
	testenv.Deadline(t, 2*time.Minute)
	node, ok := testenv.LookPath("node")
	if !ok {
		testenv.Missing(t, "node", "node 20")
	}
	pacote := "/usr/lib/node_modules/npm/node_modules/pacote"
	if _, err := os.Stat(pacote); err != nil {
		testenv.Missing(t, "pacote", "node 20's npm (its bundled pacote)")
	}
	up := fakenpm.New()
	up.Publish("victim", fakenpm.Version{Version: "1.0.0"})
	up.Publish("victim.abbreviated", fakenpm.Version{Version: "6.6.6"})
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	px := startProxy(t, map[string]string{"STORAGE_LOCAL_DIR": t.TempDir(), "MIRRORS": `[{"name":"npm","type":"npm","url":"` + up.URL() + `"}]`})
	req, _ := http.NewRequest(http.MethodGet, px.URL+"/npm/victim.abbreviated", nil)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("the attacker's packument: %d", resp.StatusCode)
	}
	script := `const p = require(process.argv[1]);
p.packument("victim", {registry: process.argv[2], cache: process.argv[3], fullMetadata: false})
  .then(d => console.log(d.name + " " + Object.keys(d.versions).join(",")), e => { console.error(e); process.exit(1) })`
	cmd := exec.Command(node, "-e", script, pacote, px.URL+"/npm/", t.TempDir())
	out, err := output(t, cmd)
	if err != nil {
		t.Fatalf("pacote: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(out); got != "victim 1.0.0" {
		t.Errorf("pacote's abbreviated packument of victim: %q, want victim 1.0.0", got)
	}
}

// A hosted npm mirror without url mirrors nothing (the public registry is
// the default of a mirror that does not host), and says so at startup;
// with url it does both.
func TestHostedMirrorSaysWhatItMirrors(t *testing.T) {
	testenv.Deadline(t, time.Minute)
	up := fakenpm.New()
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	px := startProxy(t, map[string]string{"STORAGE_LOCAL_DIR": t.TempDir(), "AUTH_TOKENS": hostedTokensJSON(),
		"MIRRORS": `[{"name":"only","type":"npm","hosted":true,"public":true},` +
			`{"name":"both","type":"npm","url":"` + up.URL() + `","hosted":true,"public":true}]`})
	log := px.Log()
	if !strings.Contains(log, `msg="mirror: hosts only`) || !strings.Contains(log, `msg="mirror: mirrors and hosts" mirror=both`) {
		t.Errorf("the startup log does not say what each mirror does:\n%s", log)
	}
	if code, _, _ := get(t, px.URL+"/only/left-pad"); code != 404 {
		t.Errorf("hosted-only mirror, a public package: %d, want 404", code)
	}
	if code, _, _ := get(t, px.URL+"/both/left-pad"); code != 200 {
		t.Errorf("hosted mirror with url, a public package: %d, want 200", code)
	}
}
