package e2e

import (
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
	bin, ok := testenv.LookPath("npm")
	if !ok {
		testenv.Missing(t, "npm", "node 20's npm")
	}
	cmd := exec.Command(bin, append(args, "--registry", registry, "--cache", cache, "--no-fund", "--no-update-notifier",
		"--fetch-retries", "0", "--loglevel", "http")...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "NO_UPDATE_NOTIFIER=1", "npm_config_userconfig="+filepath.Join(t.TempDir(), "npmrc"))
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
