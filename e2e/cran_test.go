package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/fakecran"
	"github.com/mirror-proxy/mirror-proxy/internal/testenv"
)

// rInstall runs install.packages() of pkgs into lib from repo, as a user
// whose ~/.Rprofile sets the repository would.
func rInstall(t *testing.T, repo, lib string, pkgs ...string) (string, error) {
	t.Helper()
	bin, ok := testenv.LookPath("Rscript")
	if !ok {
		testenv.Missing(t, "Rscript", "apt-get install --no-install-recommends r-base-core")
	}
	q := make([]string, len(pkgs))
	for i, p := range pkgs {
		q[i] = `"` + p + `"`
	}
	expr := `options(warn = 1); install.packages(c(` + strings.Join(q, ",") + `), repos = "` + repo + `", lib = "` + lib + `", quiet = FALSE); ` +
		`for (p in c(` + strings.Join(q, ",") + `)) if (!requireNamespace(p, lib.loc = "` + lib + `", quietly = TRUE)) quit(status = 3)`
	cmd := exec.Command(bin, "--vanilla", "-e", expr)
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HOME="+home, "R_LIBS_USER="+lib, "TMPDIR="+t.TempDir())
	return output(t, cmd)
}

// R installs a package and its dependency through the proxy on S3, cold,
// then with the upstream down; a tampered tarball is never stored and the
// install fails; an archived version is still served at its old URL.
func TestCranWithRealR(t *testing.T) {
	testenv.Deadline(t, 4*time.Minute)
	if _, ok := testenv.LookPath("Rscript"); !ok {
		testenv.Missing(t, "Rscript", "apt-get install --no-install-recommends r-base-core")
	}
	s3 := testenv.StartS3(t)
	bucket := s3.NewBucket(t)
	up := fakecran.New()
	up.Publish("tampered", fakecran.Version{Version: "1.0"})
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	env := map[string]string{
		"STORAGE_SOURCE": "s3", "STORAGE_AWS_BUCKET": bucket, "STORAGE_AWS_ARGS": s3.ArgsJSON(),
		"MIRRORS": `[{"name":"cran","type":"cran","url":"` + up.URL() + `"}]`,
	}
	px := startProxy(t, env)
	repo := px.URL + "/cran"

	lib := t.TempDir()
	if out, err := rInstall(t, repo, lib, "world"); err != nil {
		t.Fatalf("install.packages(\"world\") through the proxy: %v\n%s", err, tailLines(out, 30))
	}
	for _, p := range []string{"world", "hello"} {
		if _, err := os.Stat(filepath.Join(lib, p, "DESCRIPTION")); err != nil {
			t.Errorf("%s not installed: %v", p, err)
		}
	}
	if up.Hits("/src/contrib/world_0.5.tar.gz") != 1 || up.Hits("/src/contrib/hello_1.1.tar.gz") != 1 {
		t.Errorf("upstream tarball requests: world %d, hello %d; want 1 each", up.Hits("/src/contrib/world_0.5.tar.gz"), up.Hits("/src/contrib/hello_1.1.tar.gz"))
	}

	up.Corrupt("tampered", "1.0", true)
	out, err := rInstall(t, repo, t.TempDir(), "tampered")
	if err == nil {
		t.Errorf("a tampered tarball installed:\n%s", tailLines(out, 20))
	}
	if code, _, _ := get(t, px.URL+"/cran/src/contrib/tampered_1.0.tar.gz"); code != 502 {
		t.Errorf("tampered tarball: %d, want 502", code)
	}
	// CRAN archives hello 1.1 after it was cached: its old URL still works.
	up.Archive("hello", "1.1")

	// Upstream down, a second proxy on the same bucket (nothing in its
	// memory): indexes are served stale, tarballs from storage.
	up.Stop()
	px2 := startProxy(t, env)
	lib2 := t.TempDir()
	if out, err := rInstall(t, px2.URL+"/cran", lib2, "world"); err != nil {
		t.Fatalf("install.packages(\"world\") with the upstream down: %v\n%s", err, tailLines(out, 30))
	}
	if _, err := os.Stat(filepath.Join(lib2, "hello", "DESCRIPTION")); err != nil {
		t.Errorf("hello not installed with the upstream down: %v", err)
	}
	if code, _, _ := get(t, px2.URL+"/cran/src/contrib/tampered_1.0.tar.gz"); code == 200 {
		t.Error("the tampered tarball was stored: it is served with the upstream down")
	}
}

// A CRAN mirror behind a token, read by R without the token in the
// repository URL (R prints a URL's user info in its errors: "cannot open
// URL 'http://token:SECRET@…'"): R's curl method reads ~/.netrc, so
// install.packages works, and neither it nor a failing install prints
// the token. The same failure with the token in the URL does print it
// (what the docs warn against).
func TestCranTokenStaysOutOfROutput(t *testing.T) {
	testenv.Deadline(t, 3*time.Minute)
	bin, ok := testenv.LookPath("Rscript")
	if !ok {
		testenv.Missing(t, "Rscript", "apt-get install --no-install-recommends r-base-core")
	}
	if _, ok := testenv.LookPath("curl"); !ok {
		testenv.Missing(t, "curl", "apt-get install curl")
	}
	up := fakecran.New()
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	const secret = "cran-reader-secret-0123456789"
	px := startProxy(t, map[string]string{"STORAGE_LOCAL_DIR": t.TempDir(),
		"MIRRORS":     `[{"name":"cran","type":"cran","url":"` + up.URL() + `"}]`,
		"AUTH_TOKENS": `[{"name":"r-users","token":"` + secret + `","scopes":["read"]}]`})
	home := t.TempDir()
	host := strings.TrimPrefix(px.URL, "http://")
	hostname := host[:strings.LastIndexByte(host, ':')]
	// The docs' setup: ~/.netrc (0600) and two options in ~/.Rprofile.
	os.WriteFile(filepath.Join(home, ".netrc"), []byte("machine "+hostname+"\nlogin token\npassword "+secret+"\n"), 0o600)
	os.WriteFile(filepath.Join(home, ".Rprofile"), []byte(`options(download.file.method = "curl", download.file.extra = "--netrc")`+"\n"), 0o644)
	r := func(home, repo string, pkgs ...string) (string, error) {
		lib := t.TempDir()
		expr := `options(warn = 1); install.packages(c("` + strings.Join(pkgs, `","`) + `"), repos = "` + repo + `", lib = "` + lib + `"); ` +
			`for (p in c("` + strings.Join(pkgs, `","`) + `")) if (!requireNamespace(p, lib.loc = "` + lib + `", quietly = TRUE)) quit(status = 3)`
		cmd := exec.Command(bin, "-e", expr) // not --vanilla: ~/.Rprofile is read
		cmd.Env = append(os.Environ(), "HOME="+home, "R_LIBS_USER="+lib, "TMPDIR="+t.TempDir())
		return output(t, cmd)
	}
	out, err := r(home, px.URL+"/cran", "world")
	if err != nil {
		t.Fatalf("install.packages with the token in ~/.netrc: %v\n%s", err, tailLines(out, 30))
	}
	if strings.Contains(out, secret) {
		t.Errorf("R printed the token:\n%s", out)
	}
	// A failure (an index that cannot be read) does not print it either.
	out, err = r(home, px.URL+"/no-such-mirror", "world")
	if err == nil || strings.Contains(out, secret) {
		t.Errorf("a failing install: %v, token printed: %v\n%s", err, strings.Contains(out, secret), tailLines(out, 20))
	}
	// The way the docs warn against: the token in the URL is printed.
	// (R's default method, libcurl, without the ~/.Rprofile above.)
	out, _ = r(t.TempDir(), "http://token:"+secret+"@"+host+"/no-such-mirror", "world")
	if !strings.Contains(out, secret) {
		t.Logf("R did not print the token in the URL (the docs say it does):\n%s", tailLines(out, 10))
	}
}
