package composer

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
)

func TestExpandMinifiedDoesNotLeakDists(t *testing.T) {
	p2 := `{"minified":"composer/2.0","packages":{"a/b":[
	 {"name":"a/b","version":"2.0.0","version_normalized":"2.0.0.0","dist":{"type":"zip","url":"https://x/2.zip","reference":"r2"},"require":{"php":">=8"}},
	 {"version":"1.9.0","version_normalized":"1.9.0.0","dist":"__unset","source":{"type":"git","url":"u","reference":"r19"}},
	 {"version":"1.8.0","version_normalized":"1.8.0.0","dist":null},
	 {"version":"1.7.0","version_normalized":"1.7.0.0","dist":{"type":"zip","url":"https://x/17.zip","reference":"r17"},"require":"__unset"}
	]}}`
	vs, err := Expand([]byte(p2), "a/b")
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 4 {
		t.Fatalf("got %d versions", len(vs))
	}
	if vs[1]["name"] != "a/b" || vs[1]["require"] == nil {
		t.Errorf("unchanged keys were not carried over: %v", vs[1])
	}
	if _, ok := vs[1]["dist"]; ok {
		t.Errorf("__unset dist leaked from 2.0.0 into 1.9.0: %v", vs[1]["dist"])
	}
	if vs[2]["dist"] != nil {
		t.Errorf("null dist of 1.8.0 became %v", vs[2]["dist"])
	}
	if _, ok := vs[3]["require"]; ok {
		t.Errorf("__unset require kept")
	}
	if _, ok := FindDist(vs, "1.9.0.0", md5hex("r19")); ok {
		t.Errorf("a source-only version resolved to a dist")
	}
	if d, ok := FindDist(vs, "1.7.0.0", md5hex("r17")); !ok || d.URL != "https://x/17.zip" {
		t.Errorf("1.7.0: %v %v", d, ok)
	}
}

func TestFindDistPlaceholders(t *testing.T) {
	vs := []Version{
		{"version_normalized": "dev-feature/x", "dist": map[string]any{"type": "zip", "url": "u1", "reference": "feature/x@r17"}},
		{"version_normalized": "1.9999999.9999999.9999999-dev", "dist": map[string]any{"type": "zip", "url": "u2", "reference": "abc123"}},
		{"version_normalized": "1.0.0.0", "dist": map[string]any{"type": "zip", "url": "u3", "reference": ""}},
	}
	// Composer md5s a version with a slash and a non-hex reference.
	if d, ok := FindDist(vs, md5hex("dev-feature/x"), md5hex("feature/x@r17")); !ok || d.URL != "u1" {
		t.Errorf("md5'd version and reference: %v %v", d, ok)
	}
	if d, ok := FindDist(vs, "1.9999999.9999999.9999999-dev", "abc123"); !ok || d.URL != "u2" {
		t.Errorf("x-dev: %v %v", d, ok)
	}
	if d, ok := FindDist(vs, "1.0.0.0", ""); !ok || d.URL != "u3" {
		t.Errorf("empty reference: %v %v", d, ok)
	}
	if _, ok := FindDist(vs, "9.9.9.9", "ffff"); ok {
		t.Errorf("an unknown version and reference resolved")
	}
}

func TestClientRootLeadsToTheProxy(t *testing.T) {
	root, err := ParseRoot([]byte(`{"packages":[],"metadata-url":"/p2/%package%.json","notify-batch":"https://up/downloads/",
	 "search":"https://up/search.json?q=%query%","list":"https://up/list.json","providers-api":"https://up/p/%package%.json",
	 "providers-url":"/p/%package%$%hash%.json","metadata-changes-url":"https://up/changes.json",
	 "security-advisories":{"metadata":true,"api-url":"https://up/api/security-advisories/"},"info":"hello"}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := root.P2URL("https://up.example/base", "a/b~dev"); got != "https://up.example/p2/a/b~dev.json" {
		t.Errorf("P2URL = %s", got)
	}
	b, err := root.ClientRoot("/mirror/packagist", "http://proxy:8080/mirror/packagist/api/security-advisories/")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, gone := range []string{"https://up", "notify-batch", "search", "providers", "metadata-changes-url", `"list"`} {
		if strings.Contains(s, gone) {
			t.Errorf("client root keeps %q: %s", gone, s)
		}
	}
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	if out["metadata-url"] != "/mirror/packagist/p2/%package%.json" || out["info"] != "hello" {
		t.Errorf("client root: %s", s)
	}
	if !strings.Contains(s, `"dist-url":"/mirror/packagist/zipball/%package%/%version%/ref%reference%.%type%","preferred":true`) {
		t.Errorf("no preferred dist mirror: %s", s)
	}
	if _, err := ParseRoot([]byte(`{"packages":{}}`)); err == nil {
		t.Errorf("a Composer 1 root was accepted")
	}
}

func TestValidNameMatchesComposersRule(t *testing.T) {
	re := regexp.MustCompile(`^[a-z0-9]([_.-]?[a-z0-9]+)*/[a-z0-9](([_.]|-{1,2})?[a-z0-9]+)*$`)
	alphabet := []byte("ab1_.-/A")
	var gen func(prefix []byte, n int)
	gen = func(prefix []byte, n int) {
		if re.MatchString(string(prefix)) != ValidName(string(prefix)) {
			t.Errorf("%q: regexp %v, ValidName %v", prefix, re.MatchString(string(prefix)), ValidName(string(prefix)))
		}
		if n == 0 {
			return
		}
		for _, c := range alphabet {
			gen(append(prefix, c), n-1)
		}
	}
	gen(nil, 6)
}

func TestNamesAndPaths(t *testing.T) {
	for _, n := range []string{"a/b", "acme/foo-bar", "a.b/c_d", "x/y--z"} {
		if !ValidName(n) {
			t.Errorf("%q rejected", n)
		}
	}
	for _, n := range []string{"A/b", "a", "a/b/c", "../b", "a/.b", "a/b.", ""} {
		if ValidName(n) {
			t.Errorf("%q accepted", n)
		}
	}
	if _, _, ok := ParseDistPath("1.0.0.0", "refabc.zip"); !ok {
		t.Error("valid dist path rejected")
	}
	for _, c := range [][2]string{{"..", "ref.zip"}, {"1.0", "ref..zip"}, {"1.0", "refXYZ.zip"}, {"1.0", "abc.zip"}} {
		if _, _, ok := ParseDistPath(c[0], c[1]); ok {
			t.Errorf("%v accepted", c)
		}
	}
}

// Each Host header (without PUBLIC_URL) renders its own client root, and
// clients choose Host headers: the rendered roots kept per stored root are
// bounded, and each is right for its host.
func TestRenderedRootsAreBounded(t *testing.T) {
	root, err := ParseRoot([]byte(`{"packages":[],"metadata-url":"/p2/%package%.json","security-advisories":{"api-url":"https://packagist.org/api/security-advisories/"}}`))
	if err != nil {
		t.Fatal(err)
	}
	ri := &rootInfo{root: root}
	for i := 0; i < 200; i++ {
		adv := fmt.Sprintf("http://host%d.example/packagist/api/security-advisories/", i)
		d, err := ri.clientRoot("/packagist", adv, nil)
		if err != nil {
			t.Fatal(err)
		}
		if d == nil {
			t.Fatalf("host %d: no root", i)
		}
	}
	ri.mu.Lock()
	n := len(ri.rendered)
	ri.mu.Unlock()
	if n > maxRenderedRoots {
		t.Errorf("200 hosts left %d rendered roots, want at most %d", n, maxRenderedRoots)
	}
}
