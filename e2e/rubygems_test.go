package e2e

import (
	"crypto/md5"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/fakerubygems"
	"github.com/mirror-proxy/mirror-proxy/internal/testenv"
)

// buildGem builds a real gem with gem build: name version, depending on
// deps (name → requirement).
func buildGem(t *testing.T, name, version string, deps map[string]string) []byte {
	t.Helper()
	bin, ok := testenv.LookPath("gem")
	if !ok {
		testenv.Missing(t, "gem", "apt-get install ruby ruby-bundler")
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "lib"), 0o755)
	os.WriteFile(filepath.Join(dir, "lib", name+".rb"), []byte(fmt.Sprintf("module %s\n  VERSION = %q\nend\n", strings.ReplaceAll(strings.Title(strings.ReplaceAll(name, "-", " ")), " ", ""), version)), 0o644)
	var spec strings.Builder
	fmt.Fprintf(&spec, "Gem::Specification.new do |s|\n  s.name = %q\n  s.version = %q\n  s.summary = \"a test gem\"\n  s.authors = [\"test\"]\n  s.license = \"MIT\"\n  s.files = [\"lib/%s.rb\"]\n", name, version, name)
	for d, req := range deps {
		fmt.Fprintf(&spec, "  s.add_runtime_dependency %q, %q\n", d, req)
	}
	spec.WriteString("end\n")
	os.WriteFile(filepath.Join(dir, name+".gemspec"), []byte(spec.String()), 0o644)
	cmd := exec.Command(bin, "build", name+".gemspec")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gem build %s: %v\n%s", name, err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, name+"-"+version+".gem"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// bundle runs bundler in dir with a home and install path of its own.
func bundle(t *testing.T, dir string, extra []string, args ...string) (string, error) {
	t.Helper()
	bin, ok := testenv.LookPath("bundle")
	if !ok {
		testenv.Missing(t, "bundle", "apt-get install ruby-bundler")
	}
	home := t.TempDir()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+home, "BUNDLE_PATH="+filepath.Join(home, "bundle"), "BUNDLE_USER_HOME="+filepath.Join(home, ".bundle"),
		"BUNDLE_APP_CONFIG="+filepath.Join(home, "app-config"), "BUNDLE_SILENCE_ROOT_WARNING=1", "BUNDLE_RETRY=0", "GEM_HOME="+filepath.Join(home, "gems"))
	cmd.Env = append(cmd.Env, extra...)
	return output(t, cmd)
}

// gemfile writes a Gemfile using source and needing gems.
func gemfile(t *testing.T, source string, gems ...string) string {
	dir := t.TempDir()
	var b strings.Builder
	fmt.Fprintf(&b, "source %q\n\n", source)
	for _, g := range gems {
		fmt.Fprintf(&b, "gem %q\n", g)
	}
	os.WriteFile(filepath.Join(dir, "Gemfile"), []byte(b.String()), 0o644)
	return dir
}

// bundle install through the mirror: a gem and its dependency (two
// mirrored gems), cold, then with the upstream down and empty caches; a
// tampered gem is refused.
func TestBundleInstallThroughTheMirror(t *testing.T) {
	testenv.Deadline(t, 5*time.Minute)
	up := fakerubygems.New()
	up.Publish(fakerubygems.Gem{Name: "world-gem", Version: "1.0.0", Bytes: buildGem(t, "world-gem", "1.0.0", nil)})
	up.Publish(fakerubygems.Gem{Name: "hello-gem", Version: "1.0.0", Deps: map[string]string{"world-gem": ">= 1.0"},
		Bytes: buildGem(t, "hello-gem", "1.0.0", map[string]string{"world-gem": ">= 1.0"})})
	up.Publish(fakerubygems.Gem{Name: "evil-gem", Version: "1.0.0", Bytes: buildGem(t, "evil-gem", "1.0.0", nil)})
	up.Corrupt("evil-gem-1.0.0.gem", true)
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	store := t.TempDir()
	px := startProxy(t, map[string]string{"STORAGE_LOCAL_DIR": store,
		"MIRRORS": `[{"name":"rubygems","type":"rubygems","url":"` + up.URL() + `"}]`})
	source := px.URL + "/rubygems"
	dir := gemfile(t, source, "hello-gem")
	out, err := bundle(t, dir, nil, "install")
	if err != nil || !strings.Contains(out, "Installing hello-gem 1.0.0") || !strings.Contains(out, "Installing world-gem 1.0.0") {
		t.Fatalf("bundle install through the mirror: %v\n%s", err, tailLines(out, 30))
	}
	up.Stop()
	os.Remove(filepath.Join(dir, "Gemfile.lock"))
	if out, err := bundle(t, dir, nil, "install"); err != nil {
		t.Errorf("bundle install with the upstream down, caches empty: %v\n%s", err, tailLines(out, 30))
	}
	if err := up.Start(up.Addr()); err != nil {
		t.Fatal(err)
	}
	evil := gemfile(t, source, "evil-gem")
	out, err = bundle(t, evil, nil, "install")
	if err == nil {
		t.Errorf("bundle install of a tampered gem succeeded:\n%s", tailLines(out, 20))
	}
	if _, err := os.Stat(filepath.Join(store, "mirror-dist", "rubygems", "gems", "evil-gem-1.0.0.gem")); err == nil {
		t.Errorf("the tampered gem was stored")
	}
}

// prefetch of a Gemfile.lock fills empty storage; a proxy with
// UPSTREAM_OFFLINE=true on it then serves bundle install with the
// upstream down and empty caches.
func TestBundlePrefetchThenOffline(t *testing.T) {
	testenv.Deadline(t, 4*time.Minute)
	up := fakerubygems.New()
	up.Publish(fakerubygems.Gem{Name: "world-gem", Version: "1.0.0", Bytes: buildGem(t, "world-gem", "1.0.0", nil)})
	up.Publish(fakerubygems.Gem{Name: "hello-gem", Version: "1.0.0", Deps: map[string]string{"world-gem": ">= 1.0"},
		Bytes: buildGem(t, "hello-gem", "1.0.0", map[string]string{"world-gem": ">= 1.0"})})
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	mirrors := `[{"name":"rubygems","type":"rubygems","url":"` + up.URL() + `"}]`
	online := startProxy(t, map[string]string{"STORAGE_LOCAL_DIR": t.TempDir(), "MIRRORS": mirrors})
	dir := gemfile(t, online.URL+"/rubygems", "hello-gem")
	if out, err := bundle(t, dir, nil, "lock"); err != nil {
		t.Fatalf("bundle lock: %v\n%s", err, tailLines(out, 20))
	}
	online.Kill()
	store := t.TempDir()
	prefetchInto(t, store, mirrors, "rubygems", filepath.Join(dir, "Gemfile.lock"), "prefetch: 2 files fetched, 0 already present, 0 failed")
	up.Stop()
	offline := startProxy(t, map[string]string{"STORAGE_LOCAL_DIR": store, "MIRRORS": mirrors, "UPSTREAM_OFFLINE": "true"})
	lock, _ := os.ReadFile(filepath.Join(dir, "Gemfile.lock"))
	os.WriteFile(filepath.Join(dir, "Gemfile.lock"), []byte(strings.ReplaceAll(string(lock), online.URL, offline.URL)), 0o644)
	os.WriteFile(filepath.Join(dir, "Gemfile"), []byte("source \""+offline.URL+"/rubygems\"\n\ngem \"hello-gem\"\n"), 0o644)
	if out, err := bundle(t, dir, nil, "install"); err != nil {
		t.Errorf("bundle install offline from prefetched storage: %v\n%s", err, tailLines(out, 20))
	}
}

// gem push of a private gem (depending on a mirrored one) with a token,
// then bundle install of a Gemfile needing it; a read token cannot push;
// a second push of the version with other contents is refused; gem yank
// takes it out of the index.
func TestGemPush(t *testing.T) {
	testenv.Deadline(t, 5*time.Minute)
	up := fakerubygems.New()
	up.Publish(fakerubygems.Gem{Name: "world-gem", Version: "1.0.0", Bytes: buildGem(t, "world-gem", "1.0.0", nil)})
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	px := startProxy(t, map[string]string{"STORAGE_LOCAL_DIR": t.TempDir(),
		"AUTH_TOKENS": `[{"name":"ci","token":"gem-write-token-0123456789","scopes":["read","write"]},{"name":"reader","token":"gem-read-token-0123456789","scopes":["read"]}]`,
		"MIRRORS":     `[{"name":"rubygems","type":"rubygems","url":"` + up.URL() + `","hosted":true,"public":true}]`})
	source := px.URL + "/rubygems"
	gemBin, _ := testenv.LookPath("gem")
	push := func(gem []byte, token string) (string, error) {
		dir := t.TempDir()
		file := filepath.Join(dir, "corp-private-0.1.0.gem")
		os.WriteFile(file, gem, 0o644)
		cmd := exec.Command(gemBin, "push", "--host", source, file)
		cmd.Env = append(os.Environ(), "HOME="+dir, "GEM_HOST_API_KEY="+token)
		return output(t, cmd)
	}
	private := buildGem(t, "corp-private", "0.1.0", map[string]string{"world-gem": ">= 1.0"})
	if out, err := push(private, "gem-read-token-0123456789"); err == nil && !strings.Contains(out, "403") {
		t.Errorf("gem push with a read token:\n%s", out)
	} else if strings.Contains(out, "Successfully registered") {
		t.Errorf("gem push with a read token was taken:\n%s", out)
	}
	if out, err := push(private, "gem-write-token-0123456789"); err != nil || !strings.Contains(out, "Successfully registered gem: corp-private (0.1.0)") {
		t.Fatalf("gem push: %v\n%s", err, out)
	}
	if out, _ := push(buildGem(t, "corp-private", "0.1.0", nil), "gem-write-token-0123456789"); !strings.Contains(out, "Repushing of gem versions is not allowed") {
		t.Errorf("a second push of 0.1.0 with other contents:\n%s", out)
	}
	dir := gemfile(t, source, "corp-private")
	out, err := bundle(t, dir, nil, "install")
	if err != nil || !strings.Contains(out, "Installing corp-private 0.1.0") || !strings.Contains(out, "Installing world-gem 1.0.0") {
		t.Fatalf("bundle install of a Gemfile needing the pushed gem: %v\n%s", err, tailLines(out, 30))
	}
	cmd := exec.Command(gemBin, "yank", "--host", source, "corp-private", "-v", "0.1.0")
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "GEM_HOST_API_KEY=gem-write-token-0123456789")
	if out, err := output(t, cmd); err != nil || !strings.Contains(out, "Successfully deleted") {
		t.Errorf("gem yank: %v\n%s", err, out)
	}
	if _, _, info := get(t, source+"/info/corp-private"); strings.Contains(string(info), "0.1.0") {
		t.Errorf("/info after yank: %s", info)
	}
}

// The policies with the real bundler: a cooldown (the versions API's
// created_at), a deny rule and a dated snapshot each change the version
// bundle lock resolves; a pinned version the cooldown hides fails.
func TestBundlePolicies(t *testing.T) {
	testenv.Deadline(t, 5*time.Minute)
	up := fakerubygems.New()
	old := time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC)
	up.Publish(fakerubygems.Gem{Name: "world-gem", Version: "1.0.0", Time: old, Bytes: buildGem(t, "world-gem", "1.0.0", nil)})
	up.Publish(fakerubygems.Gem{Name: "world-gem", Version: "1.1.0", Time: time.Now().Add(-time.Hour), Bytes: buildGem(t, "world-gem", "1.1.0", nil)})
	up.Publish(fakerubygems.Gem{Name: "dated-gem", Version: "1.0.0", Time: old, Bytes: buildGem(t, "dated-gem", "1.0.0", nil)})
	up.Publish(fakerubygems.Gem{Name: "dated-gem", Version: "1.1.0", Time: time.Now().Add(-time.Hour), Bytes: buildGem(t, "dated-gem", "1.1.0", nil)})
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	px := startProxy(t, map[string]string{"STORAGE_LOCAL_DIR": t.TempDir(), "MIRRORS": `[` +
		`{"name":"rubygems","type":"rubygems","url":"` + up.URL() + `"},` +
		`{"name":"cool","type":"rubygems","url":"` + up.URL() + `","cooldown":"3d"},` +
		`{"name":"deny","type":"rubygems","url":"` + up.URL() + `","deny":["world-gem@1.1.0"]}]`})
	yesterday := "/@" + time.Now().UTC().Add(-24*time.Hour).Format("2006-01-02")
	for _, c := range []struct{ source, gem, want string }{
		{px.URL + "/rubygems", "world-gem", "1.1.0"},
		{px.URL + "/cool", "world-gem", "1.0.0"}, // 1.1.0 is an hour old
		{px.URL + "/deny", "world-gem", "1.0.0"},
		{px.URL + "/rubygems" + yesterday, "dated-gem", "1.0.0"}, // 1.1.0 is newer than the snapshot
		{px.URL + "/rubygems", "dated-gem", "1.1.0"},
	} {
		dir := gemfile(t, c.source, c.gem)
		out, err := bundle(t, dir, nil, "lock")
		lock, _ := os.ReadFile(filepath.Join(dir, "Gemfile.lock"))
		if err != nil || !strings.Contains(string(lock), "    "+c.gem+" ("+c.want+")") {
			t.Errorf("%s: bundle lock of %s: %v, want %s\n%s\n%s", c.source, c.gem, err, c.want, lock, tailLines(out, 10))
		}
	}
	dir := gemfile(t, px.URL+"/cool")
	os.WriteFile(filepath.Join(dir, "Gemfile"), []byte("source \""+px.URL+"/cool\"\n\ngem \"world-gem\", \"1.1.0\"\n"), 0o644)
	if out, err := bundle(t, dir, nil, "lock"); err == nil {
		t.Errorf("a pinned version under the cooldown was resolved:\n%s", tailLines(out, 10))
	}
	if code, _, body := get(t, px.URL+"/cool/gems/world-gem-1.1.0.gem"); code != 403 || !strings.Contains(string(body), "cooldown") {
		t.Errorf("the held-back gem file: %d %s", code, body)
	}
	// Once filtered, the gem's /versions line names the filtered /info's
	// MD5, which Bundler compares with its copy.
	_, _, info := get(t, px.URL+"/cool/info/world-gem")
	_, _, versions := get(t, px.URL+"/cool/versions")
	if want := fmt.Sprintf("world-gem 1.0.0 %x\n", md5.Sum(info)); !strings.HasSuffix(string(versions), want) {
		t.Errorf("/versions does not end with %q:\n%s", want, versions)
	}
}
