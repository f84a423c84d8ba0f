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
