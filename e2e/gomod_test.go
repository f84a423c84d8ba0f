package e2e

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/module"
	modzip "golang.org/x/mod/zip"

	"github.com/mirror-proxy/mirror-proxy/internal/fakegoproxy"
	"github.com/mirror-proxy/mirror-proxy/internal/testenv"
)

// goCmd runs the go command in dir with GOPROXY at the mirror, the
// checksum database known by its key only (so that go asks the proxy for
// it), and the module cache in modcache.
func goCmd(t *testing.T, dir, goproxy, sumdbKey, modcache string, args ...string) (string, error) {
	return goCmdEnv(t, dir, goproxy, sumdbKey, modcache, nil, args...)
}

// goCmdEnv is goCmd with more environment (KEY=value, last wins).
func goCmdEnv(t *testing.T, dir, goproxy, sumdbKey, modcache string, extra []string, args ...string) (string, error) {
	t.Helper()
	bin, ok := testenv.LookPath("go")
	if !ok {
		testenv.Missing(t, "go", "the Go toolchain")
	}
	home := t.TempDir()
	// Telemetry off in the go command's own configuration (GOTELEMETRY in
	// the environment only reports the mode): in its default mode, local,
	// the go command may leave a detached child writing under HOME after
	// it exits, and the test's TempDir cleanup then fails with "directory
	// not empty" (seen once in a full run, in TestGoPolicies).
	if err := os.MkdirAll(filepath.Join(home, ".config", "go", "telemetry"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(home, ".config", "go", "telemetry", "mode"), []byte("off"), 0o644)
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	env := []string{"GOPROXY=" + goproxy, "GOSUMDB=" + sumdbKey, "GOMODCACHE=" + modcache, "GOPATH=" + filepath.Join(home, "gopath"),
		"GOCACHE=" + filepath.Join(home, "cache"), "HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config"), "GOFLAGS=-mod=mod -modcacherw", "GOTOOLCHAIN=local",
		"GOTELEMETRY=off", "GONOSUMDB=", "GONOPROXY=", "GOPRIVATE=", "GOINSECURE=", "GOWORK=off", "CGO_ENABLED=0"}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !strings.HasPrefix(k, "GO") && k != "HOME" && k != "XDG_CONFIG_HOME" && k != "CGO_ENABLED" {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, extra...)
	return output(t, cmd)
}

// go build through the mirror: two mirrored modules (one with upper case
// in its path), checked against a checksum database served through the
// proxy, and one published to it; again with the upstream down and an
// empty module cache.
func TestGoBuildThroughTheMirror(t *testing.T) {
	testenv.Deadline(t, 4*time.Minute)
	up := fakegoproxy.New()
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	s3 := testenv.StartS3(t)
	env := map[string]string{"STORAGE_SOURCE": "s3", "STORAGE_AWS_BUCKET": s3.NewBucket(t), "STORAGE_AWS_ARGS": s3.ArgsJSON(),
		"AUTH_TOKENS": `[{"name":"ci","token":"go-write-token-0123456789","scopes":["read","write"]},{"name":"reader","token":"go-read-token-0123456789","scopes":["read"]}]`,
		"MIRRORS":     `[{"name":"go","type":"go","url":"` + up.URL() + `","hosted":true,"public":true,"sumdb":[{"key":"` + up.VerifierKey + `","url":"` + up.SumDBURL() + `"}]}]`}
	px := startProxy(t, env)
	goproxy := px.URL + "/go"

	// A private module, published with a write token (not with a read
	// one; an identical retry succeeds, other bytes are refused).
	zipOf := func(body string) []byte {
		src := t.TempDir()
		os.WriteFile(filepath.Join(src, "go.mod"), []byte("module corp.example.com/private\n\ngo 1.21\n"), 0o644)
		os.WriteFile(filepath.Join(src, "private.go"), []byte("package private\n\nfunc Name() string { return "+body+" }\n"), 0o644)
		var buf bytes.Buffer
		if err := modzip.CreateFromDir(&buf, module.Version{Path: "corp.example.com/private", Version: "v0.1.0"}, src); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	put := func(token string, body []byte) (int, string) {
		req, _ := http.NewRequest(http.MethodPut, goproxy+"/corp.example.com/private/@v/v0.1.0.zip", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	private := zipOf(`"corp.example.com/private@v0.1.0"`)
	if code, body := put("go-read-token-0123456789", private); code != http.StatusForbidden {
		t.Errorf("publish with a read token: %d %s", code, body)
	}
	if code, body := put("go-write-token-0123456789", private); code != http.StatusCreated {
		t.Fatalf("publish: %d %s", code, body)
	}
	if code, body := put("go-write-token-0123456789", private); code != http.StatusOK {
		t.Errorf("identical retry: %d %s", code, body)
	}
	if code, body := put("go-write-token-0123456789", zipOf(`"other"`)); code != http.StatusConflict {
		t.Errorf("other bytes for a published version: %d %s", code, body)
	}
	privateEnv := []string{"GOPRIVATE=corp.example.com", "GONOPROXY=none"}

	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/app\n\ngo 1.21\n\nrequire (\n\texample.com/lib v1.1.0\n\texample.com/Upper/Mod v1.0.0\n\tcorp.example.com/private v0.1.0\n)\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nimport (\n\t\"fmt\"\n\n\tmod \"example.com/Upper/Mod\"\n\t\"example.com/lib\"\n\t\"corp.example.com/private\"\n)\n\nfunc main() { fmt.Println(lib.Name(), mod.Name(), private.Name()) }\n"), 0o644)
	out, err := goCmdEnv(t, dir, goproxy, up.VerifierKey, t.TempDir(), privateEnv, "build", "-o", "app", ".")
	if err != nil {
		t.Fatalf("go build through the mirror: %v\n%s", err, tailLines(out, 30))
	}
	sum, _ := os.ReadFile(filepath.Join(dir, "go.sum"))
	if !strings.Contains(string(sum), "example.com/Upper/Mod v1.0.0 h1:") || !strings.Contains(string(sum), "example.com/lib v1.1.0 h1:") {
		t.Errorf("go.sum:\n%s", sum)
	}
	if up.Hits("/sumdb-server/lookup/example.com/lib@v1.1.0") == 0 && up.HitsPrefix("/sumdb-server/") == 0 {
		t.Errorf("the checksum database was never asked")
	}
	if !strings.Contains(px.Log(), "/go/sumdb/"+fakegoproxy.SumDBName+"/") {
		t.Errorf("go did not reach the checksum database through the proxy:\n%s", tailLines(px.Log(), 20))
	}
	if b, err := exec.Command(filepath.Join(dir, "app")).Output(); err != nil || !strings.Contains(string(b), "example.com/lib@v1.1.0 example.com/Upper/Mod@v1.0.0 corp.example.com/private@v0.1.0") {
		t.Errorf("the built program: %v %q", err, b)
	}

	// The upstream down, an empty module cache: from storage.
	up.Stop()
	os.Remove(filepath.Join(dir, "app"))
	if out, err := goCmdEnv(t, dir, goproxy, up.VerifierKey, t.TempDir(), privateEnv, "build", "-o", "app", "."); err != nil {
		t.Errorf("go build with the upstream down: %v\n%s", err, tailLines(out, 30))
	}
}

// A zip the upstream tampered with is refused by the proxy (not stored),
// and go fails saying why instead of hanging.
func TestGoTamperedZipIsRefused(t *testing.T) {
	testenv.Deadline(t, 4*time.Minute)
	up := fakegoproxy.New()
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	up.Corrupt("example.com/lib", "v1.0.0", true)
	env := map[string]string{"STORAGE_LOCAL_DIR": t.TempDir(),
		"MIRRORS": `[{"name":"go","type":"go","url":"` + up.URL() + `","sumdb":[{"key":"` + up.VerifierKey + `","url":"` + up.SumDBURL() + `"}]}]`}
	px := startProxy(t, env)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/app\n\ngo 1.21\n\nrequire example.com/lib v1.0.0\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nimport \"example.com/lib\"\n\nfunc main() { println(lib.Name()) }\n"), 0o644)
	out, err := goCmd(t, dir, px.URL+"/go", up.VerifierKey, t.TempDir(), "build", ".")
	if err == nil || !strings.Contains(out, "checksum") {
		t.Errorf("go build of a tampered module: %v; want a failure naming the checksum\n%s", err, tailLines(out, 20))
	}
	t.Logf("go said:\n%s", tailLines(out, 8))
	if _, err := os.Stat(filepath.Join(env["STORAGE_LOCAL_DIR"], "mirror-dist", "go", "example.com", "lib", "@v", "v1.0.0.zip")); err == nil {
		t.Errorf("the tampered zip was stored")
	}
}

// The policies with the real go command: a cooldown, a deny rule and a
// dated snapshot each change what @latest resolves to, and a pinned
// version they hide fails with the reason.
func TestGoPolicies(t *testing.T) {
	testenv.Deadline(t, 4*time.Minute)
	up := fakegoproxy.New() // example.com/lib v1.0.0 and v1.1.0, published 2024-01-02
	up.Publish(fakegoproxy.Module{Path: "example.com/lib", Version: "v1.2.0", Time: time.Now().Add(-time.Hour)})
	up.Publish(fakegoproxy.Module{Path: "example.com/dated", Version: "v1.0.0", Time: time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)})
	up.Publish(fakegoproxy.Module{Path: "example.com/dated", Version: "v1.1.0", Time: time.Date(2025, 6, 10, 0, 0, 0, 0, time.UTC)})
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	sumdb := `"sumdb":[{"key":"` + up.VerifierKey + `","url":"` + up.SumDBURL() + `"}]`
	env := map[string]string{"STORAGE_LOCAL_DIR": t.TempDir(), "MIRRORS": `[` +
		`{"name":"go","type":"go","url":"` + up.URL() + `",` + sumdb + `},` +
		`{"name":"cool","type":"go","url":"` + up.URL() + `",` + sumdb + `,"cooldown":"3d"},` +
		`{"name":"deny","type":"go","url":"` + up.URL() + `",` + sumdb + `,"deny":["example.com/lib@v1.1.0"]}]`}
	px := startProxy(t, env)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/probe\n\ngo 1.21\n"), 0o644)
	resolve := func(goproxy, query string) (string, error) {
		out, err := goCmd(t, dir, goproxy, up.VerifierKey, t.TempDir(), "list", "-m", "-f", "{{.Version}}", query)
		return strings.TrimSpace(out), err
	}
	for _, c := range []struct{ goproxy, query, want string }{
		{px.URL + "/go", "example.com/lib@latest", "v1.2.0"},
		{px.URL + "/cool", "example.com/lib@latest", "v1.1.0"}, // v1.2.0 is an hour old
		{px.URL + "/deny", "example.com/lib@latest", "v1.2.0"},
		{px.URL + "/deny", "example.com/lib@<v1.2.0", "v1.0.0"},            // v1.1.0 is denied
		{px.URL + "/go/@2025-01-01", "example.com/dated@latest", "v1.0.0"}, // v1.1.0 is newer than the snapshot
		{px.URL + "/go", "example.com/dated@latest", "v1.1.0"},
	} {
		if got, err := resolve(c.goproxy, c.query); err != nil || !strings.HasSuffix(got, c.want) {
			t.Errorf("GOPROXY=%s go list -m %s: %v %q, want %s", c.goproxy, c.query, err, got, c.want)
		}
	}
	for _, c := range []struct{ goproxy, query, want string }{
		{px.URL + "/cool", "example.com/lib@v1.2.0", "cooldown"},
		{px.URL + "/deny", "example.com/lib@v1.1.0", "denied"},
	} {
		out, err := resolve(c.goproxy, c.query)
		if err == nil || !strings.Contains(out, "403") || !strings.Contains(out, c.want) {
			t.Errorf("GOPROXY=%s go list -m %s: %v, want a 403 saying %q:\n%s", c.goproxy, c.query, err, c.want, out)
		}
	}
}

// prefetch of a go.sum fills empty storage; a proxy with
// UPSTREAM_OFFLINE=true on it then builds with the upstream down, the
// module cache empty.
func TestGoPrefetchThenOffline(t *testing.T) {
	testenv.Deadline(t, 3*time.Minute)
	up := fakegoproxy.New()
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	mirrors := `[{"name":"go","type":"go","url":"` + up.URL() + `","sumdb":[{"key":"` + up.VerifierKey + `","url":"` + up.SumDBURL() + `"}]}]`
	// A go.sum made through another proxy, on other storage.
	online := startProxy(t, map[string]string{"STORAGE_LOCAL_DIR": t.TempDir(), "MIRRORS": mirrors})
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/app\n\ngo 1.21\n\nrequire (\n\texample.com/lib v1.1.0\n\texample.com/Upper/Mod v1.0.0\n)\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nimport (\n\tmod \"example.com/Upper/Mod\"\n\t\"example.com/lib\"\n)\n\nfunc main() { println(lib.Name(), mod.Name()) }\n"), 0o644)
	if out, err := goCmd(t, dir, online.URL+"/go", up.VerifierKey, t.TempDir(), "mod", "tidy"); err != nil {
		t.Fatalf("go mod tidy: %v\n%s", err, tailLines(out, 20))
	}
	online.Kill()

	store := t.TempDir()
	prefetchInto(t, store, mirrors, "go", filepath.Join(dir, "go.sum"), "prefetch: 4 files fetched, 0 already present, 0 failed")
	up.Stop()
	offline := startProxy(t, map[string]string{"STORAGE_LOCAL_DIR": store, "MIRRORS": mirrors, "UPSTREAM_OFFLINE": "true"})
	if out, err := goCmd(t, dir, offline.URL+"/go", up.VerifierKey, t.TempDir(), "build", "-o", filepath.Join(t.TempDir(), "app"), "."); err != nil {
		t.Errorf("go build offline from prefetched storage: %v\n%s", err, tailLines(out, 20))
	}
}
