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

func TestReadGoSum(t *testing.T) {
	items, err := readLock(writeFile(t, "go.sum", "example.com/Upper/Mod v1.0.0 h1:abc=\nexample.com/Upper/Mod v1.0.0/go.mod h1:def=\nexample.com/only v0.1.0/go.mod h1:x=\n"), "go")
	var paths []string
	for _, it := range items {
		paths = append(paths, it.path)
	}
	want := "/example.com/!upper/!mod/@v/v1.0.0.info /example.com/!upper/!mod/@v/v1.0.0.mod /example.com/!upper/!mod/@v/v1.0.0.zip /example.com/only/@v/v0.1.0.info /example.com/only/@v/v0.1.0.mod"
	if err != nil || strings.Join(paths, " ") != want {
		t.Errorf("go.sum: %v %v\nwant %s", paths, err, want)
	}
	if _, err := readLock(writeFile(t, "go.sum", "example.com/a v1.0.0 h1:x=\nexample.com/b\n"), "go"); err == nil || !strings.Contains(err.Error(), "go.sum:2:") {
		t.Errorf("bad go.sum: %v", err)
	}
}

func TestReadCargoLock(t *testing.T) {
	items, err := readLock(writeFile(t, "Cargo.lock", `version = 4

[[package]]
name = "app"
version = "0.1.0"

[[package]]
name = "Mixed_Case"
version = "1.0.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "00"
`), "cargo")
	if err != nil || len(items) != 2 || items[0].path != "/mi/xe/mixed_case" || items[1].path != "/dl/Mixed_Case/1.0.0/download" {
		t.Errorf("Cargo.lock: %+v %v", items, err)
	}
	if _, err := readLock(writeFile(t, "Cargo.lock", "[[package]\nname = 1\n"), "cargo"); err == nil || !strings.Contains(err.Error(), "Cargo.lock:") {
		t.Errorf("bad Cargo.lock: %v", err)
	}
}

func TestReadMavenLists(t *testing.T) {
	items, err := readLock(writeFile(t, "deps.txt", `[INFO] The following files have been resolved:
[INFO]    com.example:lib-a:jar:1.0:compile -- module lib.a
[INFO]    com.example:lib-b:jar:tests:1.0:test
[INFO]    com.example:parent:pom:2:import
`), "maven")
	var paths []string
	for _, it := range items {
		paths = append(paths, it.path)
	}
	want := "/com/example/lib-a/1.0/lib-a-1.0.pom /com/example/lib-a/1.0/lib-a-1.0.jar /com/example/lib-b/1.0/lib-b-1.0.pom /com/example/lib-b/1.0/lib-b-1.0-tests.jar /com/example/parent/2/parent-2.pom"
	if err != nil || strings.Join(paths, " ") != want {
		t.Errorf("dependency:list: %v %v\nwant %s", paths, err, want)
	}
	items, err = readLock(writeFile(t, "pom.xml", `<project><dependencies>
<dependency><groupId>com.example</groupId><artifactId>lib-a</artifactId><version>1.0</version></dependency>
<dependency><groupId>com.example</groupId><artifactId>lib-c</artifactId><version>${c.version}</version></dependency>
</dependencies></project>`), "maven")
	if err != nil || len(items) != 2 || items[1].path != "/com/example/lib-a/1.0/lib-a-1.0.jar" {
		t.Errorf("pom.xml: %+v %v", items, err)
	}
	if _, err := readLock(writeFile(t, "deps.txt", "[INFO]    com.example:lib-a:jar:1.0\n"), "maven"); err == nil {
		t.Errorf("a list with no coordinates: no error")
	}
}

func TestReadGemfileLock(t *testing.T) {
	items, err := readLock(writeFile(t, "Gemfile.lock", `GEM
  remote: http://proxy/rubygems/
  specs:
    hello-gem (1.0.0)
      world-gem (>= 1.0)
    nokogiri (1.16.0-x86_64-linux)
    world-gem (1.0.0)

PLATFORMS
  ruby

DEPENDENCIES
  hello-gem
`), "rubygems")
	var paths []string
	for _, it := range items {
		paths = append(paths, it.path)
	}
	want := "/versions /info/hello-gem /gems/hello-gem-1.0.0.gem /info/nokogiri /gems/nokogiri-1.16.0-x86_64-linux.gem /info/world-gem /gems/world-gem-1.0.0.gem"
	if err != nil || strings.Join(paths, " ") != want {
		t.Errorf("Gemfile.lock: %v %v\nwant %s", paths, err, want)
	}
}
