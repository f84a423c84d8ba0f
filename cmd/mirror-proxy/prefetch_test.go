package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, name, body string) string {
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Each lock format becomes the items to fetch; a bad file is an error
// that names the file and the line.
func TestReadLock(t *testing.T) {
	items, err := readLock(writeFile(t, "pylock.toml", `lock-version = "1.0"
[[packages]]
name = "Foo.Bar"
version = "1.0"
[[packages.wheels]]
url = "https://files.example/foo_bar-1.0-py3-none-any.whl"
hashes = {sha256 = "AB12"}
`), "pypi")
	if err != nil || len(items) != 1 || items[0].path != "/simple/foo-bar/" || items[0].then == nil {
		t.Errorf("pylock.toml: %+v %v", items, err)
	}
	if _, err := readLock(writeFile(t, "pylock.toml", "lock-version = \"1.0\"\n[[packages]\nname = 1\n"), "pypi"); err == nil || !strings.Contains(err.Error(), "pylock.toml:") {
		t.Errorf("bad pylock.toml: %v", err)
	}
	if _, err := readLock(writeFile(t, "requirements.txt", "a==1\nb>=2\n"), "pypi"); err == nil || !strings.Contains(err.Error(), "requirements.txt:2:") {
		t.Errorf("bad requirements.txt: %v", err)
	}
	if _, err := readLock(writeFile(t, "composer.lock", "{\n  \"packages\": [\n    {\"name\": }\n"), "composer"); err == nil || !strings.Contains(err.Error(), "composer.lock:3") {
		t.Errorf("bad composer.lock: %v", err)
	}
	items, err = readLock(writeFile(t, "package-lock.json", `{"lockfileVersion":3,"packages":{"":{"name":"app"},
		"node_modules/@acme/util":{"version":"2.0.0","resolved":"http://x/npm/@acme/util/-/util-2.0.0.tgz"}}}`), "npm")
	if err != nil || len(items) != 2 || items[1].path != "/@acme/util/-/util-2.0.0.tgz" {
		t.Errorf("package-lock.json: %+v %v", items, err)
	}
}
