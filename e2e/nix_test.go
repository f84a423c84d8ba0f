package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/fakenix"
	"github.com/mirror-proxy/mirror-proxy/internal/testenv"
)

// nixEnv runs nix commands with a private home, cache (nix keeps narinfo
// lookups in ~/.cache/nix) and configuration; stores are chroot stores
// under the test's temp dirs, never the machine's /nix.
type nixEnv struct {
	t      *testing.T
	config string
}

func newNixEnv(t *testing.T, config ...string) *nixEnv {
	if _, ok := testenv.LookPath("nix-store"); !ok {
		testenv.Missing(t, "nix-store", "apt-get install --no-install-recommends nix-bin")
	}
	return &nixEnv{t: t, config: "experimental-features = nix-command\nbuild-users-group =\nsandbox = false\n" + strings.Join(config, "\n")}
}

func (n *nixEnv) run(bin string, args ...string) (string, error) {
	n.t.Helper()
	path, _ := testenv.LookPath(bin)
	cmd := exec.Command(path, args...)
	home := n.t.TempDir()
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CACHE_HOME="+filepath.Join(home, "cache"),
		"XDG_CONFIG_HOME="+filepath.Join(home, "config"), "NIX_CONFIG="+n.config)
	return output(n.t, cmd)
}

func (n *nixEnv) must(bin string, args ...string) string {
	n.t.Helper()
	out, err := n.run(bin, args...)
	if err != nil {
		n.t.Fatalf("%s %v: %v\n%s", bin, args, err, tailLines(out, 20))
	}
	return out
}

// nixFixture makes a signed store path and a binary cache holding it: it
// returns the store path, the cache directory and the public key.
func nixFixture(t *testing.T, n *nixEnv, content string) (storePath, cacheDir, publicKey string) {
	work := t.TempDir()
	store := "local?root=" + filepath.Join(work, "store")
	n.must("nix-store", "--generate-binary-cache-key", "e2e-test-1", filepath.Join(work, "sk"), filepath.Join(work, "pk"))
	os.WriteFile(filepath.Join(work, "hello.txt"), []byte(content), 0o644)
	storePath = strings.TrimSpace(n.must("nix-store", "--store", store, "--add", filepath.Join(work, "hello.txt")))
	n.must("nix", "store", "sign", "--store", store, "--key-file", filepath.Join(work, "sk"), storePath)
	cacheDir = filepath.Join(work, "cache")
	n.must("nix", "copy", "--store", store, "--to", "file://"+cacheDir, storePath)
	pk, _ := os.ReadFile(filepath.Join(work, "pk"))
	return storePath, cacheDir, strings.TrimSpace(string(pk))
}

// substitute fetches storePath into a fresh chroot store from substituter
// only, with signatures required.
func (n *nixEnv) substitute(substituter, key, storePath string) (string, error) {
	root := filepath.Join(n.t.TempDir(), "store")
	return n.run("nix-store", "--store", "local?root="+root, "--realise", storePath,
		"--option", "substituters", substituter, "--option", "trusted-public-keys", key,
		"--option", "require-sigs", "true", "--option", "narinfo-cache-negative-ttl", "0")
}

// nix substitutes a signed store path through the proxy on S3, cold and
// then with the upstream down; the signature is checked (a wrong key
// fails); a tampered NAR is never stored.
func TestNixSubstituteThroughTheProxy(t *testing.T) {
	testenv.Deadline(t, 4*time.Minute)
	n := newNixEnv(t)
	storePath, cacheDir, key := nixFixture(t, n, "hello from the e2e cache\n")
	up := fakenix.New()
	up.StripCA = true // input-addressed to the client: the signature must hold
	if err := up.LoadDir(cacheDir); err != nil {
		t.Fatal(err)
	}
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	s3 := testenv.StartS3(t)
	bucket := s3.NewBucket(t)
	env := map[string]string{
		"STORAGE_SOURCE": "s3", "STORAGE_AWS_BUCKET": bucket, "STORAGE_AWS_ARGS": s3.ArgsJSON(),
		"MIRRORS": `[{"name":"nix","type":"nix","url":"` + up.URL() + `"}]`,
	}
	px := startProxy(t, env)

	if out, err := n.substitute(px.URL+"/nix", "other-key-1:"+strings.Repeat("A", 43)+"=", storePath); err == nil {
		t.Errorf("a path signed by another key was substituted:\n%s", tailLines(out, 10))
	}
	if out, err := n.substitute(px.URL+"/nix", key, storePath); err != nil {
		t.Fatalf("nix-store --realise through the proxy: %v\n%s", err, tailLines(out, 20))
	}
	hash := strings.SplitN(filepath.Base(storePath), "-", 2)[0]
	info := string(up.File(hash + ".narinfo"))
	narURL := strings.TrimSpace(strings.SplitN(strings.SplitN(info, "URL: ", 2)[1], "\n", 2)[0])
	if up.Hits("/"+narURL) != 1 {
		t.Errorf("the NAR was fetched upstream %d times, want 1", up.Hits("/"+narURL))
	}

	// Upstream down, a second proxy on the same bucket.
	up.Stop()
	px2 := startProxy(t, env)
	if out, err := n.substitute(px2.URL+"/nix", key, storePath); err != nil {
		t.Fatalf("nix-store --realise with the upstream down: %v\n%s", err, tailLines(out, 20))
	}

	// A tampered NAR: the client fails, nothing is stored.
	other, otherDir, otherKey := nixFixture(t, n, "another path\n")
	bad := fakenix.New()
	if err := bad.LoadDir(otherDir); err != nil {
		t.Fatal(err)
	}
	oh := strings.SplitN(filepath.Base(other), "-", 2)[0]
	oinfo := string(bad.File(oh + ".narinfo"))
	oURL := strings.TrimSpace(strings.SplitN(strings.SplitN(oinfo, "URL: ", 2)[1], "\n", 2)[0])
	bad.Corrupt(oURL, true)
	if err := bad.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer bad.Stop()
	px3 := startProxy(t, map[string]string{
		"STORAGE_SOURCE": "s3", "STORAGE_AWS_BUCKET": bucket, "STORAGE_AWS_ARGS": s3.ArgsJSON(),
		"MIRRORS":            `[{"name":"nix","type":"nix","url":"` + bad.URL() + `"}]`,
		"VERIFY_FAILURE_TTL": "0", // so that the repaired NAR is fetched at once
	})
	if out, err := n.substitute(px3.URL+"/nix", otherKey, other); err == nil {
		t.Errorf("a tampered NAR was substituted:\n%s", tailLines(out, 10))
	}
	if code, _, _ := get(t, px3.URL+"/nix/"+oURL); code != 502 {
		t.Errorf("tampered NAR: %d, want 502", code)
	}
	bad.Corrupt(oURL, false)
	if code, _, _ := get(t, px3.URL+"/nix/"+oURL); code != 200 || bad.Hits("/"+oURL) < 2 {
		t.Errorf("the tampered NAR was stored: %d, upstream hits %d", code, bad.Hits("/"+oURL))
	}
}

// nix copy --to http://.../<mirror> uploads to a hosted cache with a write
// token from netrc; the path then substitutes from the proxy, before the
// upstream (which does not have it).
func TestNixCopyToHostedCache(t *testing.T) {
	testenv.Deadline(t, 3*time.Minute)
	up := fakenix.New()
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	px := startProxy(t, map[string]string{
		"STORAGE_LOCAL_DIR": t.TempDir(),
		"MIRRORS":           `[{"name":"nix","type":"nix","url":"` + up.URL() + `","hosted":true}]`,
		"AUTH_TOKENS":       hostedTokensJSON(),
	})
	host := strings.TrimPrefix(px.URL, "http://")
	netrc := filepath.Join(t.TempDir(), "netrc")
	hostname := strings.Split(host, ":")[0]
	os.WriteFile(netrc, []byte("machine "+hostname+" login ci password "+e2eWrite+"\n"), 0o600)
	n := newNixEnv(t, "netrc-file = "+netrc)
	work := t.TempDir()
	store := "local?root=" + filepath.Join(work, "store")
	n.must("nix-store", "--generate-binary-cache-key", "e2e-hosted-1", filepath.Join(work, "sk"), filepath.Join(work, "pk"))
	os.WriteFile(filepath.Join(work, "private.txt"), []byte("a private build output\n"), 0o644)
	storePath := strings.TrimSpace(n.must("nix-store", "--store", store, "--add", filepath.Join(work, "private.txt")))
	n.must("nix", "store", "sign", "--store", store, "--key-file", filepath.Join(work, "sk"), storePath)
	readOnly := newNixEnv(t)
	if out, err := readOnly.run("nix", "copy", "--store", store, "--to", px.URL+"/nix", storePath); err == nil {
		t.Errorf("nix copy without credentials worked:\n%s", tailLines(out, 10))
	}
	n.must("nix", "copy", "--store", store, "--to", px.URL+"/nix", storePath)
	pk, _ := os.ReadFile(filepath.Join(work, "pk"))
	reader := newNixEnv(t, "netrc-file = "+netrc)
	if out, err := reader.substitute(px.URL+"/nix", strings.TrimSpace(string(pk)), storePath); err != nil {
		t.Fatalf("substituting the uploaded path: %v\n%s", err, tailLines(out, 20))
	}
}

// A hosted cache with url takes nix copy's uploads while its upstream is
// down (never reachable here), and substitutes them: nix copy asks
// whether the cache has each path with HEAD <hash>.narinfo, which a hosted
// cache answers from what it holds, without the upstream.
func TestNixCopyToHostedCacheUpstreamDown(t *testing.T) {
	testenv.Deadline(t, 3*time.Minute)
	px := startProxy(t, map[string]string{
		"STORAGE_LOCAL_DIR": t.TempDir(),
		"MIRRORS":           `[{"name":"nix","type":"nix","url":"http://127.0.0.1:1","hosted":true}]`,
		"AUTH_TOKENS":       hostedTokensJSON(),
	})
	host := strings.TrimPrefix(px.URL, "http://")
	netrc := filepath.Join(t.TempDir(), "netrc")
	os.WriteFile(netrc, []byte("machine "+strings.Split(host, ":")[0]+" login ci password "+e2eWrite+"\n"), 0o600)
	n := newNixEnv(t, "netrc-file = "+netrc)
	work := t.TempDir()
	store := "local?root=" + filepath.Join(work, "store")
	n.must("nix-store", "--generate-binary-cache-key", "e2e-hosted-1", filepath.Join(work, "sk"), filepath.Join(work, "pk"))
	os.WriteFile(filepath.Join(work, "private.txt"), []byte("a private build output, upstream down\n"), 0o644)
	storePath := strings.TrimSpace(n.must("nix-store", "--store", store, "--add", filepath.Join(work, "private.txt")))
	n.must("nix", "store", "sign", "--store", store, "--key-file", filepath.Join(work, "sk"), storePath)
	n.must("nix", "copy", "--store", store, "--to", px.URL+"/nix", storePath)
	pk, _ := os.ReadFile(filepath.Join(work, "pk"))
	reader := newNixEnv(t, "netrc-file = "+netrc)
	if out, err := reader.substitute(px.URL+"/nix", strings.TrimSpace(string(pk)), storePath); err != nil {
		t.Fatalf("substituting the uploaded path: %v\n%s", err, tailLines(out, 20))
	}
}
