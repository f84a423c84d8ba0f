package e2e

import (
	"bytes"
	"encoding/binary"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/fakecargo"
	"github.com/mirror-proxy/mirror-proxy/internal/testenv"
)

// cargoRun runs cargo in dir with cargoHome as CARGO_HOME (the user's
// rustup toolchains still found), the registry replaced by registry.
func cargoRun(t *testing.T, dir, cargoHome string, extra []string, args ...string) (string, error) {
	t.Helper()
	bin, ok := testenv.LookPath("cargo")
	if !ok {
		testenv.Missing(t, "cargo", "Rust's cargo (rustup)")
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	env := []string{"CARGO_HOME=" + cargoHome, "CARGO_TERM_COLOR=never", "CARGO_NET_RETRY=0", "CARGO_HTTP_TIMEOUT=30"}
	if home, err := os.UserHomeDir(); err == nil && os.Getenv("RUSTUP_HOME") == "" {
		if _, err := os.Stat(filepath.Join(home, ".rustup")); err == nil {
			env = append(env, "RUSTUP_HOME="+filepath.Join(home, ".rustup"))
		}
	}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !strings.HasPrefix(k, "CARGO") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, extra...)
	return output(t, cmd)
}

// cargoProject writes a binary crate depending on deps (name = req), its
// crates-io source replaced by the sparse registry at registry.
func cargoProject(t *testing.T, registry string, deps map[string]string, main string) string {
	t.Helper()
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n")
	for d, req := range deps {
		b.WriteString(d + " = \"" + req + "\"\n")
	}
	os.WriteFile(filepath.Join(dir, "Cargo.toml"), []byte(b.String()), 0o644)
	os.MkdirAll(filepath.Join(dir, "src"), 0o755)
	os.WriteFile(filepath.Join(dir, "src", "main.rs"), []byte(main), 0o644)
	os.MkdirAll(filepath.Join(dir, ".cargo"), 0o755)
	os.WriteFile(filepath.Join(dir, ".cargo", "config.toml"), []byte("[source.crates-io]\nreplace-with = \"mirror\"\n\n[source.mirror]\nregistry = \"sparse+"+registry+"/\"\n"), 0o644)
	return dir
}

// cargo build through the mirror: two mirrored crates (one named with
// upper case), then again from an empty CARGO_HOME with the upstream
// down; a tampered .crate is refused.
func TestCargoBuildThroughTheMirror(t *testing.T) {
	testenv.Deadline(t, 5*time.Minute)
	up := fakecargo.New()
	up.Publish(fakecargo.Crate{Name: "evil", Vers: "1.0.0"})
	up.Corrupt("evil", "1.0.0", true)
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	s3 := testenv.StartS3(t)
	env := map[string]string{"STORAGE_SOURCE": "s3", "STORAGE_AWS_BUCKET": s3.NewBucket(t), "STORAGE_AWS_ARGS": s3.ArgsJSON(),
		"MIRRORS": `[{"name":"cargo","type":"cargo","url":"` + up.URL() + `"}]`}
	px := startProxy(t, env)
	registry := px.URL + "/cargo"
	dir := cargoProject(t, registry, map[string]string{"hello": "0.2", "Mixed_Case": "1"},
		"fn main() { println!(\"{} {}\", hello::name(), Mixed_Case::name()); }\n")
	out, err := cargoRun(t, dir, t.TempDir(), nil, "build")
	if err != nil {
		t.Fatalf("cargo build through the mirror: %v\n%s", err, tailLines(out, 30))
	}
	if b, err := exec.Command(filepath.Join(dir, "target", "debug", "app")).Output(); err != nil || strings.TrimSpace(string(b)) != "hello 0.2.0 Mixed_Case 1.0.0" {
		t.Errorf("the built program: %v %q", err, b)
	}
	up.Stop()
	if out, err := cargoRun(t, dir, t.TempDir(), []string{"CARGO_TARGET_DIR=" + t.TempDir()}, "build"); err != nil {
		t.Errorf("cargo build with the upstream down, CARGO_HOME empty: %v\n%s", err, tailLines(out, 30))
	}

	// A tampered crate: the proxy refuses it, cargo fails.
	if err := up.Start(up.Addr()); err != nil {
		t.Fatal(err)
	}
	evil := cargoProject(t, registry, map[string]string{"evil": "1"}, "fn main() {}\n")
	out, err = cargoRun(t, evil, t.TempDir(), nil, "build")
	if err == nil || !strings.Contains(out, "502") || !strings.Contains(out, "checksum mismatch") {
		t.Errorf("cargo build of a tampered crate: %v; want a failure on the proxy's 502, naming the checksum\n%s", err, tailLines(out, 20))
	}
	if code, _, _ := get(t, registry+"/dl/evil/1.0.0/download"); code != http.StatusBadGateway {
		t.Errorf("the tampered crate again: %d, want 502 (it must not have been stored)", code)
	}
}

// The policies with the real cargo: a cooldown (from the index's pubtime),
// a deny rule and a dated snapshot each change the version cargo resolves.
func TestCargoPolicies(t *testing.T) {
	testenv.Deadline(t, 4*time.Minute)
	up := fakecargo.New() // hello 0.1.0 and 0.2.0, published 2024-01-02
	up.Publish(fakecargo.Crate{Name: "hello", Vers: "0.3.0", PubTime: time.Now().Add(-time.Hour)})
	up.Publish(fakecargo.Crate{Name: "dated", Vers: "1.0.0", PubTime: time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)})
	up.Publish(fakecargo.Crate{Name: "dated", Vers: "1.1.0", PubTime: time.Date(2025, 6, 10, 0, 0, 0, 0, time.UTC)})
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	env := map[string]string{"STORAGE_LOCAL_DIR": t.TempDir(), "MIRRORS": `[` +
		`{"name":"cargo","type":"cargo","url":"` + up.URL() + `"},` +
		`{"name":"cool","type":"cargo","url":"` + up.URL() + `","cooldown":"3d"},` +
		`{"name":"deny","type":"cargo","url":"` + up.URL() + `","deny":["hello@0.3.0"]}]`}
	px := startProxy(t, env)
	for _, c := range []struct{ registry, crate, want string }{
		{px.URL + "/cargo", "hello", "0.3.0"},
		{px.URL + "/cool", "hello", "0.2.0"}, // 0.3.0 is an hour old
		{px.URL + "/deny", "hello", "0.2.0"},
		{px.URL + "/cargo/@2025-01-01", "dated", "1.0.0"}, // 1.1.0 is newer than the snapshot
		{px.URL + "/cargo", "dated", "1.1.0"},
	} {
		dir := cargoProject(t, c.registry, map[string]string{c.crate: "*"}, "fn main() {}\n")
		out, err := cargoRun(t, dir, t.TempDir(), nil, "generate-lockfile")
		lock, _ := os.ReadFile(filepath.Join(dir, "Cargo.lock"))
		if err != nil || !strings.Contains(string(lock), "name = \""+c.crate+"\"\nversion = \""+c.want+"\"") {
			t.Errorf("%s: cargo resolved %s to other than %s: %v\n%s\n%s", c.registry, c.crate, c.want, err, lock, tailLines(out, 10))
		}
	}
	// A pinned version the cooldown hides: cargo finds none, and says so.
	dir := cargoProject(t, px.URL+"/cool", map[string]string{"hello": "=0.3.0"}, "fn main() {}\n")
	if out, err := cargoRun(t, dir, t.TempDir(), nil, "generate-lockfile"); err == nil {
		t.Errorf("a version under the cooldown was resolved:\n%s", tailLines(out, 10))
	}
}

// cargo publish of a private crate (depending on a mirrored one) with a
// write token; a second crate depending on it builds through the same
// registry; a read token cannot publish; a second publish of the version
// with other contents is refused, and cargo yank works.
func TestCargoPublish(t *testing.T) {
	testenv.Deadline(t, 5*time.Minute)
	up := fakecargo.New()
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	env := map[string]string{"STORAGE_LOCAL_DIR": t.TempDir(),
		"AUTH_TOKENS": `[{"name":"ci","token":"cargo-write-token-0123456789","scopes":["read","write"]},{"name":"reader","token":"cargo-read-token-0123456789","scopes":["read"]}]`,
		"MIRRORS":     `[{"name":"cargo","type":"cargo","url":"` + up.URL() + `","hosted":true,"public":true}]`}
	px := startProxy(t, env)
	registry := px.URL + "/cargo"
	withRegistry := func(dir string) {
		os.WriteFile(filepath.Join(dir, ".cargo", "config.toml"), []byte("[registries.mirror]\nindex = \"sparse+"+registry+"/\"\ncredential-provider = \"cargo:token\"\n\n[source.crates-io]\nreplace-with = \"mirror\"\n"), 0o644)
	}
	lib := cargoProject(t, registry, map[string]string{"hello": "0.2"}, "")
	os.Remove(filepath.Join(lib, "src", "main.rs"))
	os.WriteFile(filepath.Join(lib, "Cargo.toml"), []byte("[package]\nname = \"corp_private\"\nversion = \"0.1.0\"\nedition = \"2021\"\ndescription = \"a private crate\"\nlicense = \"MIT\"\n\n[dependencies]\nhello = \"0.2\"\n"), 0o644)
	os.WriteFile(filepath.Join(lib, "src", "lib.rs"), []byte("pub fn name() -> String { format!(\"corp_private 0.1.0 with {}\", hello::name()) }\n"), 0o644)
	withRegistry(lib)
	publish := func(token string) (string, error) {
		return cargoRun(t, lib, t.TempDir(), []string{"CARGO_REGISTRIES_MIRROR_TOKEN=" + token}, "publish", "--registry", "mirror", "--no-verify", "--allow-dirty")
	}
	if out, err := publish("cargo-read-token-0123456789"); err == nil || !strings.Contains(out, "403") {
		t.Errorf("cargo publish with a read token: %v\n%s", err, tailLines(out, 10))
	}
	if out, err := publish("cargo-write-token-0123456789"); err != nil {
		t.Fatalf("cargo publish: %v\n%s", err, tailLines(out, 20))
	}

	app := cargoProject(t, registry, map[string]string{"corp_private": "0.1"}, "fn main() { println!(\"{}\", corp_private::name()); }\n")
	withRegistry(app)
	if out, err := cargoRun(t, app, t.TempDir(), nil, "build"); err != nil {
		t.Fatalf("cargo build of a crate depending on the published one: %v\n%s", err, tailLines(out, 30))
	}
	if b, err := exec.Command(filepath.Join(app, "target", "debug", "app")).Output(); err != nil || strings.TrimSpace(string(b)) != "corp_private 0.1.0 with hello 0.2.0" {
		t.Errorf("the built program: %v %q", err, b)
	}

	// Other contents under the published version: cargo itself will not
	// send it (the index has the version); sent anyway, it is a 409 in
	// cargo's error shape.
	os.WriteFile(filepath.Join(lib, "src", "lib.rs"), []byte("pub fn name() -> String { String::new() }\n"), 0o644)
	if out, err := publish("cargo-write-token-0123456789"); err == nil || !strings.Contains(out, "already exists") {
		t.Errorf("a second publish of 0.1.0 with other contents: %v\n%s", err, tailLines(out, 10))
	}
	meta := []byte(`{"name":"corp_private","vers":"0.1.0","deps":[],"features":{}}`)
	crate := up.CrateFile("hello", "0.1.0") // a valid .crate of other contents
	var body bytes.Buffer
	binary.Write(&body, binary.LittleEndian, uint32(len(meta)))
	body.Write(meta)
	binary.Write(&body, binary.LittleEndian, uint32(len(crate)))
	body.Write(crate)
	req, _ := http.NewRequest(http.MethodPut, registry+"/api/v1/crates/new", &body)
	req.Header.Set("Authorization", "cargo-write-token-0123456789")
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Error(err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusConflict || !strings.Contains(string(b), `{"errors":[{"detail":"crate version corp_private 0.1.0 is already published`) {
			t.Errorf("other contents under a published version: %d %s", resp.StatusCode, b)
		}
	}
	if out, err := cargoRun(t, lib, t.TempDir(), []string{"CARGO_REGISTRIES_MIRROR_TOKEN=cargo-write-token-0123456789"}, "yank", "--registry", "mirror", "--version", "0.1.0"); err != nil {
		t.Errorf("cargo yank: %v\n%s", err, tailLines(out, 10))
	}
	if code, _, body := get(t, registry+"/co/rp/corp_private"); code != 200 || !strings.Contains(string(body), `"yanked":true`) {
		t.Errorf("the index after yank: %d %s", code, body)
	}
}

// prefetch of a Cargo.lock fills empty storage; a proxy with
// UPSTREAM_OFFLINE=true on it then serves cargo build with the upstream
// down, CARGO_HOME empty.
func TestCargoPrefetchThenOffline(t *testing.T) {
	testenv.Deadline(t, 4*time.Minute)
	up := fakecargo.New()
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	mirrors := `[{"name":"cargo","type":"cargo","url":"` + up.URL() + `"}]`
	online := startProxy(t, map[string]string{"STORAGE_LOCAL_DIR": t.TempDir(), "MIRRORS": mirrors})
	dir := cargoProject(t, online.URL+"/cargo", map[string]string{"hello": "0.2", "Mixed_Case": "1"},
		"fn main() { println!(\"{} {}\", hello::name(), Mixed_Case::name()); }\n")
	if out, err := cargoRun(t, dir, t.TempDir(), nil, "generate-lockfile"); err != nil {
		t.Fatalf("cargo generate-lockfile: %v\n%s", err, tailLines(out, 20))
	}
	online.Kill()

	store := t.TempDir()
	prefetchInto(t, store, mirrors, "cargo", filepath.Join(dir, "Cargo.lock"), "prefetch: 2 files fetched, 0 already present, 0 failed")
	up.Stop()
	offline := startProxy(t, map[string]string{"STORAGE_LOCAL_DIR": store, "MIRRORS": mirrors, "UPSTREAM_OFFLINE": "true"})
	cargoProjectAt(dir, offline.URL+"/cargo")
	if out, err := cargoRun(t, dir, t.TempDir(), nil, "build"); err != nil {
		t.Errorf("cargo build offline from prefetched storage: %v\n%s", err, tailLines(out, 20))
	}
}

// cargoProjectAt points a project made by cargoProject at registry.
func cargoProjectAt(dir, registry string) {
	os.WriteFile(filepath.Join(dir, ".cargo", "config.toml"), []byte("[source.crates-io]\nreplace-with = \"mirror\"\n\n[source.mirror]\nregistry = \"sparse+"+registry+"/\"\n"), 0o644)
}

// A mirror that is not public under access tokens says auth-required in
// its config.json; cargo, configured as the docs say, then sends a read
// token on every request, and without one gets a 401 it reports.
func TestCargoAuthRequired(t *testing.T) {
	testenv.Deadline(t, 4*time.Minute)
	up := fakecargo.New()
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	px := startProxy(t, map[string]string{"STORAGE_LOCAL_DIR": t.TempDir(),
		"AUTH_TOKENS": `[{"name":"reader","token":"cargo-read-token-0123456789","scopes":["read"]}]`,
		"MIRRORS":     `[{"name":"cargo","type":"cargo","url":"` + up.URL() + `"}]`})
	registry := px.URL + "/cargo"
	if code, _, body := getAuth(t, registry+"/config.json", "cargo-read-token-0123456789"); code != 200 || !strings.Contains(string(body), `"auth-required":true`) {
		t.Errorf("config.json: %d %s", code, body)
	}
	dir := cargoProject(t, registry, map[string]string{"hello": "0.2"}, "fn main() { println!(\"{}\", hello::name()); }\n")
	os.WriteFile(filepath.Join(dir, ".cargo", "config.toml"), []byte("[registries.mirror]\nindex = \"sparse+"+registry+"/\"\ncredential-provider = \"cargo:token\"\n\n[source.crates-io]\nreplace-with = \"mirror\"\n"), 0o644)
	if out, err := cargoRun(t, dir, t.TempDir(), nil, "generate-lockfile"); err == nil {
		t.Errorf("cargo without a token read a registry that needs one:\n%s", tailLines(out, 10))
	}
	if out, err := cargoRun(t, dir, t.TempDir(), []string{"CARGO_REGISTRIES_MIRROR_TOKEN=cargo-read-token-0123456789"}, "build"); err != nil {
		t.Errorf("cargo build with a read token: %v\n%s", err, tailLines(out, 20))
	}
}

// getAuth is get with a token as Cargo sends it (the whole header).
func getAuth(t *testing.T, u, token string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Authorization", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}
