package e2e

import (
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/fakepackagist"
	"github.com/mirror-proxy/mirror-proxy/internal/fakepypi"
	"github.com/mirror-proxy/mirror-proxy/internal/testenv"
)

// With AUTH_TOKENS set, the real composer (auth.json http-basic) and pip
// (credentials in the index URL) install through the proxy with a token
// and fail with an authentication message without one.
func TestTokensWithRealClients(t *testing.T) {
	testenv.Deadline(t, 2*time.Minute)
	if _, ok := testenv.LookPath("composer"); !ok {
		testenv.Missing(t, "composer", "apt-get install composer php-cli php-zip unzip")
	}
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
	const secret = "e2e-token-0123456789abcdef"
	px := startProxy(t, map[string]string{
		"STORAGE_LOCAL_DIR": t.TempDir(),
		"MIRRORS": `[{"name":"packagist","type":"composer","url":"` + pack.URL() + `"},` +
			`{"name":"pypi","type":"pypi","url":"` + py.IndexURL() + `"}]`,
		"AUTH_TOKENS": `[{"name":"ci","token":"` + secret + `","scopes":["read"]}]`,
	})

	t.Run("composer", func(t *testing.T) {
		repo := px.URL + "/packagist"
		dir := composerProject(t, repo, nil)
		out, err := composer(t, dir, "require", "acme/foo:^1.0")
		if err == nil || !strings.Contains(strings.ToLower(out), "authenticat") {
			t.Errorf("composer without credentials: %v\n%s", err, tailLines(out, 20))
		}
		host := strings.TrimPrefix(px.URL, "http://")
		auth, _ := json.Marshal(map[string]any{"http-basic": map[string]any{host: map[string]string{"username": "token", "password": secret}}})
		if err := os.WriteFile(filepath.Join(dir, "auth.json"), auth, 0o600); err != nil {
			t.Fatal(err)
		}
		mustComposer(t, dir, "require", "acme/foo:^1.0")
		if _, err := os.Stat(filepath.Join(dir, "vendor/acme/foo/src/Version.php")); err != nil {
			t.Errorf("composer with auth.json did not install acme/foo: %v", err)
		}
	})

	t.Run("pip", func(t *testing.T) {
		index := px.URL + "/pypi/simple/"
		out, err := pip(t, index, "install", "--target", t.TempDir(), "dep-pkg")
		if err == nil || !strings.Contains(out, "401") {
			t.Errorf("pip without credentials: %v\n%s", err, tailLines(out, 20))
		}
		u, _ := url.Parse(index)
		u.User = url.UserPassword("__token__", secret)
		mustPip(t, u.String(), "install", "--target", t.TempDir(), "dep-pkg")
	})
}
