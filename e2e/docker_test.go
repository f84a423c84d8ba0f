package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/fakepackagist"
	"github.com/mirror-proxy/mirror-proxy/internal/fakepypi"
	"github.com/mirror-proxy/mirror-proxy/internal/testenv"
)

const imageTag = "e2e"

// dockerReady checks for the engine and compose, and builds the images
// with the same script users run.
func dockerReady(t *testing.T) []string {
	t.Helper()
	if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		testenv.Missing(t, "a Docker engine", strings.TrimSpace(string(out)))
	}
	compose := []string{"docker-compose"}
	if _, err := exec.LookPath("docker-compose"); err != nil {
		if exec.Command("docker", "compose", "version").Run() != nil {
			testenv.Missing(t, "docker compose", "apt-get install docker-compose")
		}
		compose = []string{"docker", "compose"}
	}
	build := exec.Command("../docker/build", "stack")
	build.Env = append(os.Environ(), "IMAGE_TAG="+imageTag)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("./docker/build stack: %v\n%s", err, out)
	}
	return compose
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func portOf(t *testing.T, addr string) string {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func waitHTTP(t *testing.T, url string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer 200 within %s: %v", url, timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// installBoth installs a Composer project and a pip project through base.
func installBoth(t *testing.T, base string, lock []byte) []byte {
	t.Helper()
	repo := base + "/packagist"
	dir := composerProject(t, repo, nil)
	if lock == nil {
		mustComposer(t, dir, "require", "acme/foo:^1.0", "acme/big:^1.0")
	} else {
		os.WriteFile(filepath.Join(dir, "composer.json"), []byte(`{"repositories":[{"type":"composer","url":"`+repo+`"},{"packagist.org":false}],"config":{"secure-http":false},"require":{"acme/foo":"^1.0","acme/big":"^1.0"}}`), 0o644)
		os.WriteFile(filepath.Join(dir, "composer.lock"), lock, 0o644)
		mustComposer(t, dir, "install")
	}
	for _, f := range []string{"vendor/acme/foo/src/Version.php", "vendor/acme/bar/src/Version.php", "vendor/acme/big/data.bin"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("composer did not install %s", f)
		}
	}
	pdir := t.TempDir()
	mustPip(t, base+"/pypi/simple/", "install", "--target", pdir, "Foo.Bar")
	if got := installed(t, pdir); got != "dep_pkg-1.0 foo_bar-1.0" {
		t.Errorf("pip installed %q", got)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "composer.lock"))
	return b
}

func randomName() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// TestDocker builds the images, runs the proxy with docker run against a
// real S3 server, then brings up the compose stack, replaces its proxy
// containers and installs from the bucket alone.
func TestDocker(t *testing.T) {
	// The images' build (minutes on a loaded machine) has a deadline of its
	// own, the last resort; the test's starts once they are built.
	testenv.Deadline(t, 20*time.Minute)
	if testing.Short() {
		t.Skip("docker tests skipped in -short")
	}
	compose := dockerReady(t)
	testenv.Deadline(t, 8*time.Minute)
	size, _ := strconv.ParseInt(run(t, "docker", "image", "inspect", "-f", "{{.Size}}", "mirror-proxy:"+imageTag), 10, 64)
	t.Logf("image mirror-proxy:%s is %.1f MB", imageTag, float64(size)/1e6)
	// client_golang took it past 30 MB, to a ceiling of 35 MB; the AWS
	// SDK's KMS client (client-side encryption, issue 26, which asks for
	// that client) took it to 35.2 MB: the ceiling is now 37 MB.
	if size > 37e6 {
		t.Errorf("image is %d bytes, target under 37 MB", size)
	}
	user := run(t, "docker", "image", "inspect", "-f", "{{.Config.User}} {{.Config.Healthcheck.Test}}", "mirror-proxy:"+imageTag)
	if !strings.HasPrefix(user, "65532") || !strings.Contains(user, "healthcheck") {
		t.Errorf("image user/healthcheck: %q", user)
	}

	packagist := fakepackagist.New()
	if err := packagist.Start("0.0.0.0:0"); err != nil {
		t.Fatal(err)
	}
	defer packagist.Stop()
	pypiUp := fakepypi.New(false)
	if err := pypiUp.Start("0.0.0.0:0"); err != nil {
		t.Fatal(err)
	}
	defer pypiUp.Stop()
	mirrors := fmt.Sprintf(`[{"name":"packagist","type":"composer","url":"http://host.docker.internal:%s"},{"name":"pypi","type":"pypi","url":"http://host.docker.internal:%s/simple"}]`,
		portOf(t, packagist.Addr()), portOf(t, pypiUp.Addr()))

	t.Run("no env: embedded default, read-only root", func(t *testing.T) {
		port := testenv.FreePort(t)
		name := "mp-e2e-default-" + randomName()
		// The README's command for local storage: a named volume on /data
		// (the image declares no VOLUME, so nothing anonymous is left).
		run(t, "docker", "run", "-d", "--name", name, "--read-only", "--tmpfs", "/tmp", "-v", name+":/data",
			"-p", fmt.Sprintf("127.0.0.1:%d:8080", port), "mirror-proxy:"+imageTag)
		defer exec.Command("docker", "volume", "rm", "-f", name).Run()
		defer exec.Command("docker", "rm", "-f", "-v", name).Run()
		waitHTTP(t, fmt.Sprintf("http://127.0.0.1:%d/readyz", port), 30*time.Second)
	})

	t.Run("docker run with STORAGE_* against a real S3 server", func(t *testing.T) {
		s3 := testenv.StartS3On(t, "0.0.0.0")
		bucket := s3.NewBucket(t)
		port := testenv.FreePort(t)
		name := "mp-e2e-run-" + randomName()
		run(t, "docker", "run", "-d", "--name", name, "--read-only", "--tmpfs", "/tmp",
			"--add-host", "host.docker.internal:host-gateway", "-p", fmt.Sprintf("127.0.0.1:%d:8080", port),
			"-e", "STORAGE_SOURCE=s3", "-e", "STORAGE_AWS_BUCKET="+bucket,
			"-e", "STORAGE_AWS_ARGS="+s3.ArgsJSONVia(fmt.Sprintf("http://host.docker.internal:%d", s3.Port())),
			"-e", "MIRRORS="+mirrors, "mirror-proxy:"+imageTag)
		defer exec.Command("docker", "rm", "-f", "-v", name).Run()
		base := fmt.Sprintf("http://127.0.0.1:%d", port)
		waitHTTP(t, base+"/readyz", 30*time.Second)
		installBoth(t, base, nil)
		keys := strings.Join(s3.Keys(t, bucket), "\n")
		if !strings.Contains(keys, "mirror-dist/packagist/acme/big/") || !strings.Contains(keys, "mirror-dist/pypi/foo-bar/") {
			t.Errorf("the bucket lacks the installed files:\n%s", keys)
		}
		run(t, "docker", "stop", "-t", "30", name)
		if code := run(t, "docker", "inspect", "-f", "{{.State.ExitCode}}", name); code != "0" {
			logs, _ := exec.Command("docker", "logs", name).CombinedOutput()
			t.Errorf("SIGTERM: exit code %s, want 0 (graceful)\n%s", code, tailLines(string(logs), 10))
		}
	})

	t.Run("compose stack", func(t *testing.T) {
		project := "mpe2e" + randomName()
		port := testenv.FreePort(t)
		// The mirrors are public (reads without a token) and PyPI also
		// hosts; AUTH_TOKENS and PUBLIC_URL come from an env file, as a
		// user's .env would give them.
		composeMirrors := strings.ReplaceAll(strings.ReplaceAll(mirrors, `"type":"composer"`, `"type":"composer","public":true`),
			`"type":"pypi"`, `"type":"pypi","public":true,"hosted":true`)
		replica1, replica2 := testenv.FreePort(t), testenv.FreePort(t)
		publicURL := fmt.Sprintf("http://localhost:%d", port)
		envFile := filepath.Join(t.TempDir(), "stack.env")
		os.WriteFile(envFile, []byte("AUTH_TOKENS='"+hostedTokensJSON()+"'\nPUBLIC_URL="+publicURL+"\n"), 0o600)
		env := append(os.Environ(), "IMAGE_TAG="+imageTag, fmt.Sprintf("PROXY_PORT=127.0.0.1:%d", port), "MIRRORS="+composeMirrors,
			fmt.Sprintf("PROXY_1_PORT=%d", replica1), fmt.Sprintf("PROXY_2_PORT=%d", replica2))
		dc := func(args ...string) string {
			t.Helper()
			cmd := exec.Command(compose[0], append(append(compose[1:], "-f", "../compose.yaml", "-p", project, "--env-file", envFile), args...)...)
			cmd.Env = env
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("compose %v: %v\n%s", args, err, out)
			}
			return string(out)
		}
		defer func() {
			if t.Failed() {
				cmd := exec.Command(compose[0], append(compose[1:], "-f", "../compose.yaml", "-p", project, "--env-file", envFile, "logs", "--tail", "30")...)
				cmd.Env = env
				out, _ := cmd.CombinedOutput()
				t.Logf("compose logs:\n%s", out)
			}
			cmd := exec.Command(compose[0], append(compose[1:], "-f", "../compose.yaml", "-p", project, "--env-file", envFile, "down", "-v")...)
			cmd.Env = env
			cmd.Run()
		}()
		dc("up", "-d")
		base := fmt.Sprintf("http://127.0.0.1:%d", port)
		waitHTTP(t, base+"/packagist/packages.json", 90*time.Second)
		if code, _, _ := get(t, base+"/metrics"); code != 404 {
			t.Errorf("/metrics through the load balancer: %d, want 404 (internal only)", code)
		}
		// Each replica's own port (loopback) serves its metrics.
		for _, p := range []int{replica1, replica2} {
			if code, _, body := get(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", p)); code != 200 || !strings.Contains(string(body), "mirror_http_requests_total") {
				t.Errorf("replica metrics on port %d: %d", p, code)
			}
		}
		// AUTH_TOKENS from the env file: a twine upload through the
		// balancer is accepted with the write token, refused with the read
		// one; PUBLIC_URL from it is what the status page's snippets use.
		rel := fakepypi.Release{Version: "1.0"}
		whl, _, whlName := fakepypi.BuildWheel("stack-private", rel)
		whlPath := filepath.Join(t.TempDir(), whlName)
		os.WriteFile(whlPath, whl, 0o644)
		if out, err := twine(t, base+"/pypi/legacy/", e2eRead, whlPath); err == nil || !strings.Contains(out, "403") {
			t.Errorf("twine with the read token through the stack: %v\n%s", err, tailLines(out, 10))
		}
		if out, err := twine(t, base+"/pypi/legacy/", e2eWrite, whlPath); err != nil {
			t.Errorf("twine upload through the stack's balancer (AUTH_TOKENS from the env file): %v\n%s", err, tailLines(out, 20))
		}
		if code, _, body := get(t, base+"/pypi/simple/stack-private/"); code != 200 || !strings.Contains(string(body), whlName) {
			t.Errorf("the uploaded wheel is not listed: %d %s", code, body)
		}
		if code, _, body := get(t, base+"/", "Accept", "application/json", "Authorization", "Bearer "+e2eRead); code != 200 ||
			!strings.Contains(string(body), `"url":"`+publicURL+`/pypi"`) {
			t.Errorf("status page through the stack: PUBLIC_URL %s not used: %d %s", publicURL, code, body)
		}
		lock := installBoth(t, base, nil)
		served := 0
		for _, svc := range []string{"proxy-1", "proxy-2"} {
			if strings.Contains(dc("logs", svc), "/packagist/") {
				served++
			}
		}
		if served != 2 {
			t.Errorf("the load balancer sent Composer traffic to %d of 2 replicas", served)
		}

		// Fresh proxy containers, upstreams down: everything from the bucket.
		dc("rm", "-s", "-f", "proxy-1", "proxy-2")
		packagist.Stop()
		pypiUp.Stop()
		dc("up", "-d", "proxy-1", "proxy-2")
		waitHTTP(t, base+"/packagist/packages.json", 60*time.Second)
		installBoth(t, base, lock)

		dc("down")
		if out := run(t, "docker", "ps", "-a", "--filter", "label=com.docker.compose.project="+project, "-q"); out != "" {
			t.Errorf("containers left after down: %s", out)
		}
		vols := run(t, "docker", "volume", "ls", "-q", "--filter", "label=com.docker.compose.project="+project)
		if vols != project+"_s3-data" {
			t.Errorf("volumes after down: %q, want only %s_s3-data", vols, project)
		}
		if anon := run(t, "docker", "volume", "ls", "-q", "--filter", "dangling=true"); anon != "" {
			for _, v := range strings.Fields(anon) {
				if len(v) == 64 {
					t.Errorf("an anonymous volume was left behind: %s", v)
				}
			}
		}
	})
}
