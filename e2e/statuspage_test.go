package e2e

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/fakenpm"
	"github.com/mirror-proxy/mirror-proxy/internal/fakepypi"
	"github.com/mirror-proxy/mirror-proxy/internal/testenv"
)

// artifactDir is where tests leave files for people (screenshots):
// $TEST_ARTIFACTS, else mirror-proxy-artifacts in the temporary directory.
func artifactDir(t *testing.T) string {
	dir := os.Getenv("TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "mirror-proxy-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// chromium runs Debian's headless Chromium on url with args; it returns
// its standard output and what it logged (console messages included).
func chromium(t *testing.T, url string, args ...string) (string, string) {
	t.Helper()
	bin, ok := testenv.LookPath("chromium")
	if !ok {
		testenv.Missing(t, "chromium", "apt-get install chromium")
	}
	home := t.TempDir()
	all := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-default-browser-check",
		"--user-data-dir=" + filepath.Join(home, "profile"), "--enable-logging=stderr", "--v=0"}, args...)
	cmd := exec.Command(bin, append(all, url)...)
	cmd.Env = append(os.Environ(), "HOME="+home)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := testenv.Run(t, cmd); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, tailLines(errb.String(), 30))
	}
	return out.String(), errb.String()
}

// The status page in a real browser: a proxy with three mirrors (PyPI and
// npm mirrored, Composer hosted) renders each one's name, health and
// client snippet; its stylesheet and script load under the page's CSP
// (the script shows the copy buttons), nothing else is requested, and the
// console has no error. A screenshot is kept. Under access tokens an
// anonymous reader sees the names and health only, and no package name.
func TestStatusPageInChromium(t *testing.T) {
	testenv.Deadline(t, 3*time.Minute)
	py := fakepypi.New(false)
	if err := py.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer py.Stop()
	npm := fakenpm.New()
	if err := npm.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer npm.Stop()
	storage := t.TempDir()
	mirrors := `[{"name":"pypi","type":"pypi","url":"` + py.IndexURL() + `","cooldown":"3d"},` +
		`{"name":"npm","type":"npm","url":"` + npm.URL() + `"},{"name":"private","type":"composer","hosted":true}]`
	px := startProxy(t, map[string]string{"STORAGE_LOCAL_DIR": storage, "MIRRORS": mirrors})
	// Requests that make both upstreams healthy.
	for _, p := range []string{"/pypi/simple/dep-pkg/", "/npm/left-pad"} {
		if code, _, body := get(t, px.URL+p); code != 200 {
			t.Fatalf("%s: %d %s", p, code, body)
		}
	}

	dom, logged := chromium(t, px.URL+"/", "--dump-dom")
	text := regexp.MustCompile(`<[^>]+>`).ReplaceAllString(dom, " ")
	for _, want := range []string{
		"pypi ok pypi", "npm ok npm", "private ok (hosted only) composer hosted",
		"pip config set global.index-url " + px.URL + "/pypi/simple/",
		"npm config set registry " + px.URL + "/npm/",
		"composer config repos.packagist composer " + px.URL + "/private",
		"cooldown: versions younger than 3d are hidden",
	} {
		if !strings.Contains(strings.Join(strings.Fields(text), " "), want) {
			t.Errorf("the rendered page lacks %q", want)
		}
	}
	if strings.Count(dom, `class="copy"`) != 3 || strings.Contains(dom, `class="copy" data-target="snippet-pypi" hidden`) {
		t.Errorf("the copy buttons are not shown: the page's script did not run")
	}
	for _, m := range regexp.MustCompile(`(?:src|href)="([^"]*)"`).FindAllStringSubmatch(dom, -1) {
		if !strings.HasPrefix(m[1], "/") || strings.HasPrefix(m[1], "//") {
			t.Errorf("the page refers to an external resource: %s", m[1])
		}
	}
	for _, line := range strings.Split(logged, "\n") {
		if strings.Contains(line, "CONSOLE") || strings.Contains(line, "Content Security Policy") || strings.Contains(line, "Refused to") {
			t.Errorf("browser console: %s", line)
		}
	}
	log := px.Log()
	for _, asset := range []string{"path=/-/status.css status=200", "path=/-/status.js status=200"} {
		if !strings.Contains(log, asset) {
			t.Errorf("the browser did not load %s", asset)
		}
	}
	shot := filepath.Join(artifactDir(t), "status-page.png")
	chromium(t, px.URL+"/", "--screenshot="+shot, "--window-size=1100,1300", "--hide-scrollbars")
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 10_000 {
		t.Errorf("screenshot %s: %v", shot, err)
	}
	t.Logf("screenshot: %s", shot)
	px.Stop()

	// Under tokens, on the same storage: the anonymous reader.
	const reader = "status-e2e-reader-0123456"
	guarded := startProxy(t, map[string]string{"STORAGE_LOCAL_DIR": storage, "MIRRORS": mirrors,
		"AUTH_TOKENS": `[{"name":"reader","token":"` + reader + `","scopes":["read"]}]`})
	req, _ := http.NewRequest(http.MethodGet, guarded.URL+"/pypi/simple/yanky/", nil)
	req.SetBasicAuth("token", reader)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("a read with the token: %v %v", err, resp)
	} else {
		resp.Body.Close()
	}
	dom, _ = chromium(t, guarded.URL+"/", "--dump-dom")
	text = strings.Join(strings.Fields(regexp.MustCompile(`<[^>]+>`).ReplaceAllString(dom, " ")), " ")
	for _, want := range []string{"pypi ok", "npm", "private ok (hosted only)", "sign in with a token"} {
		if !strings.Contains(text, want) {
			t.Errorf("the anonymous page lacks %q:\n%s", want, text)
		}
	}
	for _, hidden := range []string{"yanky", "dep-pkg", "left-pad", "pip config", "cooldown", py.IndexURL(), "Cache hits"} {
		if strings.Contains(dom, hidden) {
			t.Errorf("the anonymous page shows %q", hidden)
		}
	}
}
