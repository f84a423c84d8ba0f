// Package e2e runs the real mirror-proxy binary against a real S3 server
// (versitygw), a local fake upstream, and the real clients (composer).
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/testenv"
)

var proxyBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mirror-proxy-e2e-")
	if err != nil {
		panic(err)
	}
	proxyBin = filepath.Join(dir, "mirror-proxy")
	build := exec.Command("go", "build", "-race", "-o", proxyBin, "../cmd/mirror-proxy")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building mirror-proxy:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running mirror-proxy.
type proc struct {
	URL     string
	cmd     *exec.Cmd
	t       *testing.T
	logPath string
}

// Log is what the proxy has logged so far.
func (p *proc) Log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// startProxy runs the binary with env (plus LISTEN_ADDR on a free port).
func startProxy(t *testing.T, env map[string]string) *proc {
	t.Helper()
	return startProxyBin(t, proxyBin, env)
}

var (
	plainOnce sync.Once
	plainPath string
	plainErr  error
)

// plainBin is the binary as users run it, without the race detector
// (whose shadow memory would distort a measure of memory).
func plainBin(t *testing.T) string {
	plainOnce.Do(func() {
		plainPath = proxyBin + "-plain"
		out, err := exec.Command("go", "build", "-o", plainPath, "../cmd/mirror-proxy").CombinedOutput()
		if err != nil {
			plainErr = fmt.Errorf("%v\n%s", err, out)
		}
	})
	if plainErr != nil {
		t.Fatalf("building mirror-proxy without -race: %v", plainErr)
	}
	return plainPath
}

// startProxyBin is startProxy with another binary.
func startProxyBin(t *testing.T, bin string, env map[string]string) *proc {
	t.Helper()
	port := testenv.FreePort(t)
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), fmt.Sprintf("LISTEN_ADDR=127.0.0.1:%d", port), "LOG_FORMAT=text", "AWS_EC2_METADATA_DISABLED=true")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	logPath := filepath.Join(t.TempDir(), "proxy.log")
	lf, _ := os.Create(logPath)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := testenv.Start(t, cmd); err != nil {
		t.Fatal(err)
	}
	p := &proc{URL: fmt.Sprintf("http://127.0.0.1:%d", port), cmd: cmd, t: t, logPath: logPath}
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("proxy log:\n%s", tailLines(string(b), 60))
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("proxy did not start: %v\n%s", err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tailLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Stop sends SIGTERM and waits.
func (p *proc) Stop() {
	if !testenv.Alive(p.cmd) {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = testenv.Wait(p.cmd); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		testenv.KillGroup(p.cmd)
		<-done
	}
}

// Kill sends SIGKILL (to its whole process group).
func (p *proc) Kill() {
	testenv.KillGroup(p.cmd)
}

// output runs a client (composer, pip) in its own process group, so that a
// test that passes its deadline kills it, and returns what it printed.
func output(t *testing.T, cmd *exec.Cmd) (string, error) {
	t.Helper()
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := testenv.Run(t, cmd)
	return buf.String(), err
}

// get does a GET with headers and returns status, headers and body.
func get(t *testing.T, url string, hdr ...string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: body: %v", url, err)
	}
	return resp.StatusCode, resp.Header, b
}

// composerProject writes a composer.json using the proxy as its only
// repository.
func composerProject(t *testing.T, repoURL string, require map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	cj := map[string]any{
		"name":         "test/project",
		"repositories": []any{map[string]any{"type": "composer", "url": repoURL}, map[string]any{"packagist.org": false}},
		"config":       map[string]any{"secure-http": false, "allow-plugins": false},
	}
	if require != nil {
		cj["require"] = require
	}
	b, _ := json.MarshalIndent(cj, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "composer.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// composer runs the composer CLI in dir with a fresh home and cache.
func composer(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	bin, ok := testenv.LookPath("composer")
	if !ok {
		testenv.Missing(t, "composer", "apt-get install composer php-cli php-zip unzip")
	}
	home := t.TempDir()
	cmd := exec.Command(bin, append(args, "--no-interaction", "--no-plugins", "--no-scripts", "--no-progress", "--no-ansi", "-v")...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "COMPOSER_HOME="+home, "COMPOSER_CACHE_DIR="+filepath.Join(home, "cache"),
		"COMPOSER_NO_INTERACTION=1", "COMPOSER_ALLOW_SUPERUSER=1", "COMPOSER_NO_AUDIT=1", "COMPOSER_DISABLE_NETWORK=0")
	return output(t, cmd)
}

func mustComposer(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := composer(t, dir, args...)
	if err != nil {
		t.Fatalf("composer %v: %v\n%s", args, err, tailLines(out, 60))
	}
	return out
}

// The binary says which build it is: --version and the mirror_build_info
// metric, with the VCS revision Go stamped into it.
func TestBuildInfo(t *testing.T) {
	out, err := exec.Command(proxyBin, "--version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "mirror-proxy ") || !strings.Contains(string(out), "go1.") {
		t.Errorf("--version: %v %q", err, out)
	}
	px := startProxy(t, map[string]string{"STORAGE_LOCAL_DIR": t.TempDir()})
	code, _, body := get(t, px.URL+"/metrics")
	if code != 200 || !strings.Contains(string(body), "mirror_build_info{") {
		t.Errorf("/metrics: %d, no mirror_build_info", code)
	}
	for _, args := range [][]string{{"prefetch", "--help"}, {"healthcheck", "--help"}} {
		out, err := exec.Command(proxyBin, args...).CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "usage: mirror-proxy "+args[0]) {
			t.Errorf("%v: %v %q", args, err, out)
		}
	}
}

// prefetchInto runs the binary's prefetch of file for mirror into the
// local storage store (MIRRORS mirrors), and fails unless it succeeds
// with summary in its output.
func prefetchInto(t *testing.T, store, mirrors, mirror, file, summary string) {
	t.Helper()
	cmd := exec.Command(proxyBin, "prefetch", "--mirror", mirror, file)
	cmd.Env = append(os.Environ(), "STORAGE_LOCAL_DIR="+store, "MIRRORS="+mirrors, "LOG_FORMAT=text")
	out, err := output(t, cmd)
	if err != nil || !strings.Contains(out, summary) {
		t.Fatalf("prefetch %s: %v\n%s", filepath.Base(file), err, tailLines(out, 20))
	}
}
