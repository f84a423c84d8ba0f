package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/fakepackagist"
	"github.com/mirror-proxy/mirror-proxy/internal/fakepypi"
	"github.com/mirror-proxy/mirror-proxy/internal/testenv"
)

// prefetch of a composer.lock and a requirements.txt fills empty storage;
// a proxy with UPSTREAM_OFFLINE=true on it then installs both projects
// with the upstreams down and no upstream request at all; a bad lock file
// is a one-line error naming the file and the line.
func TestPrefetchThenOffline(t *testing.T) {
	testenv.Deadline(t, 3*time.Minute)
	if _, ok := testenv.LookPath("composer"); !ok {
		testenv.Missing(t, "composer", "apt-get install composer php-cli php-zip unzip")
	}
	pack := fakepackagist.New()
	if err := pack.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer pack.Stop()
	py := fakepypi.New(false)
	if err := py.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer py.Stop()
	mirrors := `[{"name":"packagist","type":"composer","url":"` + pack.URL() + `","fileHosts":["*"]},` +
		`{"name":"pypi","type":"pypi","url":"` + py.IndexURL() + `"}]`

	// A composer.lock made through another proxy, on other storage.
	online := startProxy(t, map[string]string{"STORAGE_LOCAL_DIR": t.TempDir(), "MIRRORS": mirrors})
	proj := composerProject(t, online.URL+"/packagist", nil)
	mustComposer(t, proj, "require", "acme/foo:^1.0")
	online.Kill()
	work := t.TempDir()
	reqs := filepath.Join(work, "requirements.txt")
	os.WriteFile(reqs, []byte("# pinned\nfoo-bar==1.0 \\\n    --hash=sha256:0000000000000000000000000000000000000000000000000000000000000000\ndep-pkg==1.0\n"), 0o644)
	// The hash line above matches nothing: the first run must fail, saying so.
	store := t.TempDir()
	prefetch := func(args ...string) (string, error) {
		cmd := exec.Command(proxyBin, append([]string{"prefetch"}, args...)...)
		cmd.Env = append(os.Environ(), "STORAGE_LOCAL_DIR="+store, "MIRRORS="+mirrors, "LOG_FORMAT=text")
		return output(t, cmd)
	}
	if out, err := prefetch("--mirror", "pypi", reqs); err == nil || !strings.Contains(out, "no file of foo-bar 1.0") {
		t.Errorf("prefetch with a hash that matches nothing: %v\n%s", err, tailLines(out, 10))
	}
	os.WriteFile(reqs, []byte("# pinned\nfoo-bar==1.0\ndep-pkg==1.0\n"), 0o644)
	// dep-pkg's wheel and metadata came in with the failed run above.
	if out, err := prefetch("--mirror", "pypi", reqs); err != nil || !strings.Contains(out, "prefetch: 2 files fetched, 2 already present, 0 failed") {
		t.Fatalf("prefetch requirements.txt: %v\n%s", err, tailLines(out, 20))
	}
	// Again: everything is in storage now, and the summary says so.
	if out, err := prefetch("--mirror", "pypi", reqs); err != nil || !strings.Contains(out, "prefetch: 0 files fetched, 4 already present, 0 failed") {
		t.Fatalf("prefetch requirements.txt again: %v\n%s", err, tailLines(out, 20))
	}
	if out, err := prefetch("--mirror", "packagist", filepath.Join(proj, "composer.lock")); err != nil {
		t.Fatalf("prefetch composer.lock: %v\n%s", err, tailLines(out, 20))
	}
	bad := filepath.Join(work, "bad.txt")
	os.WriteFile(bad, []byte("dep-pkg==1.0\nfoo-bar>=1\n"), 0o644)
	if out, err := prefetch("--mirror", "pypi", bad); err == nil || !strings.Contains(out, "bad.txt:2:") || strings.Count(strings.TrimSpace(out), "\n") > 0 {
		t.Errorf("a bad lock file: %v\n%s", err, out)
	}

	before := pack.HitsPrefix("/") + py.HitsPrefix("/")
	pack.Stop()
	py.Stop()
	off := startProxy(t, map[string]string{"STORAGE_LOCAL_DIR": store, "MIRRORS": mirrors, "UPSTREAM_OFFLINE": "true"})
	fresh := composerProject(t, off.URL+"/packagist", map[string]string{"acme/foo": "^1.0"})
	mustComposer(t, fresh, "update")
	if _, err := os.Stat(filepath.Join(fresh, "vendor/acme/foo/src/Version.php")); err != nil {
		t.Errorf("composer offline did not install acme/foo: %v", err)
	}
	target := t.TempDir()
	mustPip(t, off.URL+"/pypi/simple/", "install", "--target", target, "-r", reqs)
	if got := installed(t, target); !strings.Contains(got, "foo_bar-1.0") && !strings.Contains(got, "Foo.Bar-1.0") {
		t.Errorf("pip offline installed %q", got)
	}
	if after := pack.HitsPrefix("/") + py.HitsPrefix("/"); after != before {
		t.Errorf("the offline proxy made %d upstream requests", after-before)
	}
}

// A prefetch interrupted mid-download (SIGINT) reports the file in flight
// as interrupted, not failed (it is committed if its download completes
// while the process stops: past DOWNLOAD_FINISH_SHARE), and the next run
// goes on from there.
func TestPrefetchInterrupted(t *testing.T) {
	testenv.Deadline(t, 2*time.Minute)
	py := fakepypi.New(false)
	if err := py.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer py.Stop()
	py.SetDelay(3 * time.Second) // each file: half, a pause, the rest
	mirrors := `[{"name":"pypi","type":"pypi","url":"` + py.IndexURL() + `"}]`
	work, store := t.TempDir(), t.TempDir()
	reqs := filepath.Join(work, "requirements.txt")
	os.WriteFile(reqs, []byte("big-wheel==1.0\n"), 0o644)
	cmd := exec.Command(proxyBin, "prefetch", "--mirror", "pypi", reqs)
	cmd.Env = append(os.Environ(), "STORAGE_LOCAL_DIR="+store, "MIRRORS="+mirrors, "LOG_FORMAT=text")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := testenv.Start(t, cmd); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	if err == nil || !strings.Contains(out.String(), "prefetch: interrupted at") || !strings.Contains(out.String(), " 0 failed") {
		t.Errorf("interrupted prefetch: %v\n%s", err, tailLines(out.String(), 10))
	}
	py.SetDelay(0)
	again := exec.Command(proxyBin, "prefetch", "--mirror", "pypi", reqs)
	again.Env = cmd.Env
	o, err := output(t, again)
	if err != nil || !strings.Contains(o, " 0 failed") {
		t.Errorf("the run after the interruption: %v\n%s", err, tailLines(o, 10))
	}
}
