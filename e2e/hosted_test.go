package e2e

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/fakepackagist"
	"github.com/mirror-proxy/mirror-proxy/internal/fakepypi"
	"github.com/mirror-proxy/mirror-proxy/internal/testenv"
	composerpkg "github.com/mirror-proxy/mirror-proxy/mirror/composer"
)

const (
	e2eWrite = "e2e-write-token-0123456789"
	e2eRead  = "e2e-read-token-0123456789"
)

func hostedTokensJSON() string {
	return `[{"name":"ci","token":"` + e2eWrite + `","scopes":["read","write"]},` +
		`{"name":"dev","token":"` + e2eRead + `","scopes":["read"]}]`
}

// privateLibZip is acme/private-lib at version v: it requires the mirrored
// acme/foo, so one install needs both sides of the repository.
func privateLibZip(t *testing.T, v string) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, body := range map[string]string{
		"private-lib/composer.json": `{"name":"acme/private-lib","require":{"acme/foo":"^1.0"},"autoload":{"psr-4":{"Acme\\PrivateLib\\":"src/"}}}`,
		"private-lib/src/Lib.php":   "<?php\nnamespace Acme\\PrivateLib;\nclass Lib { const VERSION = '" + v + "'; }\n",
	} {
		w, _ := zw.Create(name)
		w.Write([]byte(body))
	}
	zw.Close()
	return buf.Bytes()
}

// curlPublish publishes a zip as the docs say: curl's multipart PUT.
func curlPublish(t *testing.T, repo, token, name, version string, zipBytes []byte) (int, string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "package.zip")
	if err := os.WriteFile(f, zipBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	bin, ok := testenv.LookPath("curl")
	if !ok {
		testenv.Missing(t, "curl", "apt-get install curl")
	}
	cmd := exec.Command(bin, "-sS", "-X", "PUT", "-u", "__token__:"+token, "-F", "package=@"+f,
		"-w", "\n%{http_code}", repo+"/packages/upload/"+name+"/"+version)
	out, err := output(t, cmd)
	if err != nil {
		t.Fatalf("curl: %v\n%s", err, out)
	}
	i := strings.LastIndexByte(out, '\n')
	var code int
	fmt.Sscan(out[i+1:], &code)
	return code, out[:i]
}

// twine runs Debian's twine against the mirror's legacy upload URL.
func twine(t *testing.T, repoURL, token string, args ...string) (string, error) {
	t.Helper()
	bin, ok := testenv.LookPath("twine")
	if !ok {
		testenv.Missing(t, "twine", "apt-get install twine")
	}
	cmd := exec.Command(bin, append([]string{"upload", "--non-interactive", "--disable-progress-bar",
		"--repository-url", repoURL, "-u", "__token__", "-p", token}, args...)...)
	cmd.Env = append(os.Environ(), "PYTHON_KEYRING_BACKEND=keyring.backends.null.Keyring", "HOME="+t.TempDir())
	return output(t, cmd)
}

func withUser(t *testing.T, raw, token string) string {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword("__token__", token)
	return u.String()
}

func writeAuthJSON(t *testing.T, dir, proxyURL, token string) {
	host := strings.TrimPrefix(proxyURL, "http://")
	auth, _ := json.Marshal(map[string]any{"http-basic": map[string]any{host: map[string]string{"username": "token", "password": token}}})
	if err := os.WriteFile(filepath.Join(dir, "auth.json"), auth, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Private packages beside mirrored ones, with the real clients, on S3:
// published with curl and twine, installed with composer and pip through
// the same repository URL (mirrored dependencies included), never
// replaced by an upstream's package of the same name, and still installed
// with the upstream down.
func TestHostedPackagesWithRealClients(t *testing.T) {
	testenv.Deadline(t, 4*time.Minute)
	if _, ok := testenv.LookPath("composer"); !ok {
		testenv.Missing(t, "composer", "apt-get install composer php-cli php-zip unzip")
	}
	s3 := testenv.StartS3(t)
	bucket := s3.NewBucket(t)
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
	px := startProxy(t, map[string]string{
		"STORAGE_SOURCE": "s3", "STORAGE_AWS_BUCKET": bucket, "STORAGE_AWS_ARGS": s3.ArgsJSON(),
		"MIRRORS": `[{"name":"packagist","type":"composer","url":"` + pack.URL() + `","hosted":true},` +
			`{"name":"pypi","type":"pypi","url":"` + py.IndexURL() + `","hosted":true}]`,
		"AUTH_TOKENS": hostedTokensJSON(),
	})
	repo := px.URL + "/packagist"
	legacy := px.URL + "/pypi/legacy/"
	index := px.URL + "/pypi/simple/"

	// Fixtures: private-pkg 1.0 (wheel and sdist) needs the mirrored dep-pkg.
	rel := fakepypi.Release{Version: "1.0", RequiresDist: []string{"dep-pkg>=1"}, RequiresPython: ">=3.7"}
	whl, _, whlName := fakepypi.BuildWheel("private-pkg", rel)
	sdist, sdistName := fakepypi.BuildSdist("private-pkg", rel)
	dir := t.TempDir()
	whlPath, sdistPath := filepath.Join(dir, whlName), filepath.Join(dir, sdistName)
	os.WriteFile(whlPath, whl, 0o644)
	os.WriteFile(sdistPath, sdist, 0o644)

	t.Run("publish", func(t *testing.T) {
		for _, v := range []string{"1.0.0", "1.1.0"} {
			if code, body := curlPublish(t, repo, e2eWrite, "acme/private-lib", v, privateLibZip(t, v)); code != 201 {
				t.Fatalf("curl PUT %s: %d %s", v, code, body)
			}
		}
		if code, body := curlPublish(t, repo, e2eRead, "acme/private-lib", "1.2.0", privateLibZip(t, "1.2.0")); code != 403 {
			t.Errorf("a read-only token published: %d %s", code, body)
		}
		if out, err := twine(t, legacy, e2eWrite, whlPath, sdistPath); err != nil {
			t.Fatalf("twine upload: %v\n%s", err, tailLines(out, 30))
		}
		out, err := twine(t, legacy, e2eRead, whlPath)
		if err == nil || !strings.Contains(out, "403") {
			t.Errorf("twine with a read-only token: %v\n%s", err, tailLines(out, 20))
		}
		// --skip-existing: the same files again succeed, and nothing new is stored.
		before := len(s3.Keys(t, bucket))
		if out, err := twine(t, legacy, e2eWrite, "--skip-existing", whlPath, sdistPath); err != nil {
			t.Errorf("twine --skip-existing: %v\n%s", err, tailLines(out, 30))
		}
		if after := len(s3.Keys(t, bucket)); after != before {
			t.Errorf("--skip-existing stored %d objects more", after-before)
		}
		var files []string
		for _, k := range s3.Keys(t, bucket) {
			if strings.HasPrefix(k, "artifact/pypi/files/") && !strings.HasSuffix(k, ".metadata") {
				files = append(files, k)
			}
		}
		if len(files) != 2 {
			t.Errorf("stored files of private-pkg: %v, want the wheel and the sdist once each", files)
		}
	})

	t.Run("poetry publish", func(t *testing.T) {
		bin, ok := testenv.LookPath("poetry")
		if !ok {
			testenv.Missing(t, "poetry", "apt-get install python3-poetry")
		}
		proj := t.TempDir()
		os.WriteFile(filepath.Join(proj, "pyproject.toml"), []byte("[tool.poetry]\nname = \"poetry-pkg\"\nversion = \"0.1.0\"\n"+
			"description = \"published with poetry\"\nauthors = [\"CI <ci@example.com>\"]\n\n[tool.poetry.dependencies]\npython = \">=3.7\"\n\n"+
			"[build-system]\nrequires = [\"poetry-core\"]\nbuild-backend = \"poetry.core.masonry.api\"\n"), 0o644)
		os.MkdirAll(filepath.Join(proj, "poetry_pkg"), 0o755)
		os.WriteFile(filepath.Join(proj, "poetry_pkg", "__init__.py"), []byte("X = 1\n"), 0o644)
		cmd := exec.Command(bin, "publish", "--build", "-r", "private", "-n")
		cmd.Dir = proj
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "PYTHON_KEYRING_BACKEND=keyring.backends.null.Keyring",
			"POETRY_REPOSITORIES_PRIVATE_URL="+legacy, "POETRY_HTTP_BASIC_PRIVATE_USERNAME=__token__",
			"POETRY_HTTP_BASIC_PRIVATE_PASSWORD="+e2eWrite, "POETRY_VIRTUALENVS_CREATE=false")
		if out, err := output(t, cmd); err != nil {
			t.Fatalf("poetry publish: %v\n%s", err, tailLines(out, 30))
		}
		target := t.TempDir()
		mustPip(t, withUser(t, index, e2eRead), "install", "--target", target, "poetry-pkg")
		if got := installed(t, target); !strings.Contains(got, "poetry_pkg-0.1.0") {
			t.Errorf("pip installed %q, want poetry_pkg-0.1.0", got)
		}
	})

	// The upstreams now publish the private names, higher.
	pack.Publish("acme/private-lib", fakepackagist.Version{Version: "9.0.0"})
	py.Publish("private-pkg", fakepypi.Release{Version: "99.0"})

	install := func(t *testing.T) {
		t.Helper()
		proj := composerProject(t, repo, nil)
		writeAuthJSON(t, proj, px.URL, e2eRead)
		mustComposer(t, proj, "require", "acme/private-lib:*")
		lock, _ := os.ReadFile(filepath.Join(proj, "composer.lock"))
		if !strings.Contains(string(lock), `"version": "1.1.0"`) || strings.Contains(string(lock), "9.0.0") {
			t.Errorf("composer.lock does not hold private-lib 1.1.0 alone:\n%s", lock)
		}
		if b, err := os.ReadFile(filepath.Join(proj, "vendor/acme/private-lib/src/Lib.php")); err != nil || !strings.Contains(string(b), "'1.1.0'") {
			t.Errorf("private-lib not installed: %v", err)
		}
		if _, err := os.Stat(filepath.Join(proj, "vendor/acme/foo")); err != nil {
			t.Errorf("the mirrored dependency acme/foo is not installed: %v", err)
		}
		target := t.TempDir()
		mustPip(t, withUser(t, index, e2eRead), "install", "--target", target, "private-pkg")
		got := installed(t, target)
		if !strings.Contains(got, "private_pkg-1.0") || !strings.Contains(got, "dep_pkg-1.0") {
			t.Errorf("pip installed %q, want private_pkg-1.0 and dep_pkg-1.0", got)
		}
	}
	t.Run("install, with the upstream's higher versions of the private names", install)

	t.Run("no credentials", func(t *testing.T) {
		proj := composerProject(t, repo, nil)
		out, err := composer(t, proj, "require", "acme/private-lib:*")
		if err == nil || !strings.Contains(strings.ToLower(out), "authenticat") {
			t.Errorf("composer without credentials: %v\n%s", err, tailLines(out, 20))
		}
		out, err = pip(t, index, "install", "--target", t.TempDir(), "private-pkg")
		if err == nil || !strings.Contains(out, "401") {
			t.Errorf("pip without credentials: %v\n%s", err, tailLines(out, 20))
		}
	})

	pack.Stop()
	py.Stop()
	t.Run("install with the upstreams down", install)
}

// Two replicas on one bucket, 20 uploads of different versions of one
// package at once, spread over both: all 20 are listed afterwards, by
// both replicas.
func TestConcurrentUploadsOverTwoReplicas(t *testing.T) {
	testenv.Deadline(t, 3*time.Minute)
	s3 := testenv.StartS3(t)
	redis := testenv.StartRedis(t)
	bucket := s3.NewBucket(t)
	env := map[string]string{
		"STORAGE_SOURCE": "s3", "STORAGE_AWS_BUCKET": bucket, "STORAGE_AWS_ARGS": s3.ArgsJSON(),
		"MIRRORS":     `[{"name":"private","type":"composer","hosted":true}]`,
		"AUTH_TOKENS": hostedTokensJSON(), "REDIS_URL": redis.URL,
	}
	pxs := []*proc{startProxy(t, env), startProxy(t, env)}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			v := fmt.Sprintf("1.%d.0", i)
			code, body := httpPublish(t, pxs[i%2].URL+"/private", "acme/private-lib", v, privateLibZip(t, v))
			if code != 201 {
				t.Errorf("publish %s: %d %s", v, code, body)
			}
		})
	}
	wg.Wait()
	for i, p := range pxs {
		code, _, body := get(t, p.URL+"/private/p2/acme/private-lib.json", "Authorization", "Bearer "+e2eRead)
		vs, err := composerpkg.Expand(body, "acme/private-lib")
		if code != 200 || err != nil || len(vs) != 20 {
			t.Errorf("replica %d lists %d versions (%d, %v), want 20", i, len(vs), code, err)
		}
	}
}

// httpPublish is a multipart PUT from Go (many at once).
func httpPublish(t *testing.T, repo, name, version string, zipBytes []byte) (int, string) {
	var buf bytes.Buffer
	ct := writeMultipart(&buf, "package", "package.zip", zipBytes)
	req, _ := http.NewRequest(http.MethodPut, repo+"/packages/upload/"+name+"/"+version, &buf)
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Authorization", "Bearer "+e2eWrite)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b := new(bytes.Buffer)
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

func writeMultipart(buf *bytes.Buffer, field, filename string, body []byte) string {
	mw := multipart.NewWriter(buf)
	w, _ := mw.CreateFormFile(field, filename)
	w.Write(body)
	mw.Close()
	return mw.FormDataContentType()
}
