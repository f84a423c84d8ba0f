package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/fakepackagist"
	"github.com/mirror-proxy/mirror-proxy/internal/testenv"
)

// TestComposerMirrorOnS3 walks a user's story with the real composer CLI,
// the real proxy binary, a real S3 server and a fake Packagist.
func TestComposerMirrorOnS3(t *testing.T) {
	testenv.Deadline(t, 4*time.Minute)
	if _, ok := testenv.LookPath("composer"); !ok {
		testenv.Missing(t, "composer", "apt-get install composer php-cli php-zip unzip")
	}
	s3 := testenv.StartS3(t)
	bucket := s3.NewBucket(t)
	up := fakepackagist.New()
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	upAddr := up.Addr()

	env := func() map[string]string {
		return map[string]string{
			"STORAGE_SOURCE":            "s3",
			"STORAGE_AWS_BUCKET":        bucket,
			"STORAGE_AWS_ARGS":          s3.ArgsJSON(),
			"MIRRORS":                   `[{"name":"packagist","type":"composer","url":"` + up.URL() + `","ttl":"2s","notFoundTtl":"1s"}]`,
			"MIRROR_METADATA_CACHE_DIR": t.TempDir(),
			"MIRROR_DIST_CACHE_DIR":     t.TempDir(),
		}
	}
	top := t // proxies started in subtests outlive them
	px := startProxy(t, env())
	repo := px.URL + "/mirror/packagist"

	var lock []byte
	t.Run("1 cold require fills storage", func(t *testing.T) {
		dir := composerProject(t, repo, nil)
		out := mustComposer(t, dir, "require", "acme/foo:^1.0", "acme/devpkg:dev-feature/x", "acme/huge:^1.0", "acme/big:^1.0")
		for _, f := range []string{"vendor/acme/foo/src/Version.php", "vendor/acme/bar/src/Version.php", "vendor/acme/devpkg/src/Version.php",
			"vendor/acme/huge/src/Version.php", "vendor/acme/big/data.bin"} {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				t.Errorf("composer did not install %s: %v\n%s", f, err, tailLines(out, 40))
			}
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "vendor/acme/huge/src/Version.php")); !bytes.Contains(b, []byte("1.29.9")) {
			t.Errorf("acme/huge: want the newest of 300 versions (1.29.9), got %q", b)
		}
		if strings.Contains(out, up.URL()) && strings.Contains(out, "Downloading "+up.URL()) {
			t.Errorf("composer downloaded straight from the upstream:\n%s", out)
		}
		lock, _ = os.ReadFile(filepath.Join(dir, "composer.lock"))
		if !bytes.Contains(lock, []byte(`"url": "`+repo+`/zipball/%package%/%version%/ref%reference%.%type%"`)) &&
			!bytes.Contains(lock, []byte(strings.ReplaceAll(`"url": "`+repo+`/zipball/%package%/%version%/ref%reference%.%type%"`, "/", `\/`))) {
			t.Errorf("composer.lock does not name the proxy as the dist mirror:\n%s", lock)
		}
		keys := strings.Join(s3.Keys(t, bucket), "\n")
		for _, want := range []string{
			"mirror-meta/packagist/packages.json",
			"mirror-meta/packagist/p2/acme/foo.json",
			"mirror-meta/packagist/p2/acme/devpkg~dev.json",
			"mirror-dist/packagist/acme/foo/1.1.0.0/ref",
			"mirror-dist/packagist/acme/bar/1.0.1.0/ref",
			"mirror-dist/packagist/acme/big/1.0.0.0/ref",
			"mirror-dist/packagist/acme/devpkg/",
		} {
			if !strings.Contains(keys, want) {
				t.Errorf("bucket has no key starting with %s; keys:\n%s", want, keys)
			}
		}
		_, _, root := get(t, repo+"/packages.json")
		if bytes.Contains(root, []byte(upAddr)) && !bytes.Contains(root, []byte(`"api-url"`)) || bytes.Contains(root, []byte(`"search"`)) ||
			bytes.Contains(root, []byte(`"providers-api"`)) || bytes.Contains(root, []byte(`"notify-batch"`)) {
			t.Errorf("packages.json leaks upstream URLs or keeps search/providers/notify-batch:\n%s", root)
		}
		if !bytes.Contains(root, []byte(`"metadata-url":"/mirror/packagist/p2/%package%.json"`)) {
			t.Errorf("packages.json metadata-url does not lead to the proxy:\n%s", root)
		}
		// composer audit asks the proxy's advisories API (Composer's own
		// packages[0]= form), which asks the upstream's.
		out = composerAudit(t, dir)
		if !strings.Contains(out, fakepackagist.AdvisoryID) {
			t.Errorf("composer audit does not list the upstream's advisory %s:\n%s", fakepackagist.AdvisoryID, tailLines(out, 30))
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	installFromLock := func(t *testing.T) {
		dir := composerProject(t, repo, map[string]string{"acme/foo": "^1.0"})
		if err := os.WriteFile(filepath.Join(dir, "composer.lock"), lock, 0o644); err != nil {
			t.Fatal(err)
		}
		out := mustComposer(t, dir, "install")
		for _, f := range []string{"vendor/acme/foo/src/Version.php", "vendor/acme/devpkg/src/Version.php", "vendor/acme/big/data.bin"} {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				t.Errorf("install from lock did not install %s\n%s", f, tailLines(out, 40))
			}
		}
	}

	t.Run("2 install from lock with the upstream down", func(t *testing.T) {
		up.Stop()
		before := up.HitsPrefix("/")
		installFromLock(t)
		if up.HitsPrefix("/") != before {
			t.Errorf("the upstream was asked while down")
		}
	})

	t.Run("3 restarted proxy with empty caches installs from S3 alone", func(t *testing.T) {
		px.Stop()
		px = startProxy(top, env())
		repo2 := px.URL + "/mirror/packagist"
		// The lock names the old proxy's address: rewrite it, as `composer update mirrors` would.
		old := repo
		lock = bytes.ReplaceAll(lock, []byte(strings.ReplaceAll(old, "/", `\/`)), []byte(strings.ReplaceAll(repo2, "/", `\/`)))
		lock = bytes.ReplaceAll(lock, []byte(old), []byte(repo2))
		repo = repo2
		installFromLock(t)
		// Metadata too comes from S3 with the upstream down (served stale).
		code, hdr, _ := get(t, repo+"/p2/acme/foo.json")
		if code != 200 {
			t.Fatalf("p2 from S3 with the upstream down: %d", code)
		}
		if hdr.Get("Last-Modified") == "" {
			t.Errorf("no Last-Modified on metadata served from S3")
		}
	})

	t.Run("4 404 for unknown, 5xx for cold while down", func(t *testing.T) {
		code, _, _ := get(t, repo+"/p2/acme/big2.json")
		if code < 500 {
			t.Errorf("cold package with the upstream down: got %d, want 5xx (never 404)", code)
		}
		if err := up.Start(upAddr); err != nil {
			t.Fatal(err)
		}
		code, _, _ = get(t, repo+"/p2/acme/nope.json")
		if code != 404 {
			t.Errorf("unknown package: got %d, want 404", code)
		}
		hits := up.Hits("/p2/acme/nope.json")
		get(t, repo+"/p2/acme/nope.json")
		if up.Hits("/p2/acme/nope.json") != hits {
			t.Errorf("a repeated 404 within the negative TTL asked the upstream again")
		}
		code, _, _ = get(t, repo+"/p2/Acme/Foo.json")
		if code != 404 {
			t.Errorf("invalid (uppercase) name: got %d, want 404", code)
		}
	})

	t.Run("5 If-Modified-Since and a new release after the TTL", func(t *testing.T) {
		code, hdr, _ := get(t, repo+"/p2/acme/foo.json")
		if code != 200 {
			t.Fatalf("p2: %d", code)
		}
		lm := hdr.Get("Last-Modified")
		code, _, _ = get(t, repo+"/p2/acme/foo.json", "If-Modified-Since", lm)
		if code != 304 {
			t.Errorf("If-Modified-Since %s: got %d, want 304", lm, code)
		}
		code, _, _ = get(t, repo+"/packages.json", "If-Modified-Since", time.Now().UTC().Add(time.Hour).Format(http.TimeFormat))
		if code != 304 {
			t.Errorf("packages.json with If-Modified-Since: got %d, want 304", code)
		}
		up.Publish("acme/foo", fakepackagist.Version{Version: "1.2.0", Ref: "1200000000000000000000000000000000000000"})
		deadline := time.Now().Add(15 * time.Second)
		for {
			_, _, body := get(t, repo+"/p2/acme/foo.json")
			if bytes.Contains(body, []byte(`"1.2.0"`)) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("a version published upstream did not appear after the TTL")
			}
			time.Sleep(300 * time.Millisecond)
		}
		dir := composerProject(t, repo, nil)
		mustComposer(t, dir, "require", "acme/foo:^1.2")
	})

	t.Run("6 twenty concurrent requests for one cold dist", func(t *testing.T) {
		dir := composerProject(t, repo, nil)
		mustComposer(t, dir, "require", "acme/big2:^1.0", "--no-install")
		var l struct {
			Packages []struct {
				Name string
				Dist struct{ Reference string }
			}
		}
		b, _ := os.ReadFile(filepath.Join(dir, "composer.lock"))
		_ = json.Unmarshal(b, &l)
		var ref string
		for _, p := range l.Packages {
			if p.Name == "acme/big2" {
				ref = p.Dist.Reference
			}
		}
		url := repo + "/zipball/acme/big2/1.0.0.0/ref" + ref + ".zip"
		up.SetDelay(500 * time.Millisecond)
		defer up.SetDelay(0)
		want := up.Zip("acme/big2", "1.0.0")
		var wg sync.WaitGroup
		errs := make(chan string, 20)
		for range 20 {
			wg.Go(func() {
				resp, err := http.Get(url)
				if err != nil {
					errs <- err.Error()
					return
				}
				defer resp.Body.Close()
				var buf bytes.Buffer
				if _, err := buf.ReadFrom(resp.Body); err != nil || resp.StatusCode != 200 || !bytes.Equal(buf.Bytes(), want) {
					errs <- "status " + resp.Status + ", bytes differ or truncated"
				}
			})
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Error(e)
		}
		if n := up.HitsPrefix("/dist/acme/big2/"); n != 1 {
			t.Errorf("20 concurrent cold requests caused %d upstream downloads, want 1", n)
		}
	})

	t.Run("7 a dist not in the metadata is refused", func(t *testing.T) {
		before := up.HitsPrefix("/dist/")
		for _, u := range []string{
			repo + "/zipball/acme/foo/9.9.9.9/ref0123456789abcdef0123456789abcdef01234567.zip",
			repo + "/zipball/acme/foo/1.0.0.0/ref..zip",
			repo + "/zipball/acme/foo/..%2f..%2fetc/refabc.zip",
		} {
			if code, _, _ := get(t, u); code != 404 {
				t.Errorf("GET %s: got %d, want 404", u, code)
			}
		}
		if up.HitsPrefix("/dist/") != before {
			t.Errorf("a refused dist URL reached the upstream")
		}
	})
}

// composerAudit runs composer audit (which takes none of the install
// commands' options) in dir and returns its output; it exits 1 when it
// lists advisories.
func composerAudit(t *testing.T, dir string) string {
	t.Helper()
	bin, _ := testenv.LookPath("composer")
	home := t.TempDir()
	cmd := exec.Command(bin, "audit", "--format=plain", "--no-interaction", "--no-ansi")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "COMPOSER_HOME="+home, "COMPOSER_CACHE_DIR="+filepath.Join(home, "cache"), "COMPOSER_ALLOW_SUPERUSER=1")
	out, _ := cmd.CombinedOutput()
	return string(out)
}
