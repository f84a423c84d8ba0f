package composer

import (
	"archive/zip"
	"bytes"
	"strings"
	"testing"
)

func TestNormalizeVersion(t *testing.T) {
	for in, want := range map[string]string{
		"1.2.0": "1.2.0.0", "1.2": "1.2.0.0", "v2.0.0": "2.0.0.0", "1.0.0-beta1": "1.0.0.0-beta1",
		"1.0.0-b2": "1.0.0.0-beta2", "2.1.3-RC1": "2.1.3.0-RC1", "1.0.0-alpha": "1.0.0.0-alpha",
		"1.0.0-pl1": "1.0.0.0-patch1", "1.0.0+build.5": "1.0.0.0", "1.0.0-stable": "1.0.0.0",
		"dev-main": "dev-main", "dev-Feature": "dev-Feature", "master": "dev-master",
		"1.x-dev": "1.9999999.9999999.9999999-dev", "2.3.x-dev": "2.3.9999999.9999999-dev",
		"1.0.0-dev": "1.0.0.0-dev", "20240101": "20240101", "2024.01.02": "2024.01.02.0",
	} {
		got, err := NormalizeVersion(in)
		if err != nil || got != want {
			t.Errorf("NormalizeVersion(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "not a version", "1.0.0 as 2", "../1", "x.y.z"} {
		if got, err := NormalizeVersion(bad); err == nil {
			t.Errorf("NormalizeVersion(%q) = %q, want an error", bad, got)
		}
	}
	if !IsDevVersion("dev-main") || !IsDevVersion("1.9999999.9999999.9999999-dev") || IsDevVersion("1.0.0.0-beta1") {
		t.Error("IsDevVersion")
	}
}

func zipOf(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, body := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(body))
	}
	zw.Close()
	return buf.Bytes()
}

func TestComposerJSON(t *testing.T) {
	cj := `{"name":"acme/lib","require":{"php":">=8.1"}}`
	for _, files := range []map[string]string{
		{"composer.json": cj, "src/A.php": "<?php"},
		{"lib-1.0/composer.json": cj, "lib-1.0/src/A.php": "<?php"},
	} {
		b := zipOf(t, files)
		m, err := ComposerJSON(bytes.NewReader(b), int64(len(b)))
		if err != nil || m["name"] != "acme/lib" {
			t.Errorf("%v: %v %v", files, m, err)
		}
	}
	for msg, files := range map[string]map[string]string{
		"no composer.json":   {"README": "x"},
		"no composer.json ":  {"a/composer.json": cj, "b/README": "x"},
		"not a JSON object":  {"composer.json": "[1]"},
		"not a JSON object ": {"composer.json": "{"},
	} {
		b := zipOf(t, files)
		if _, err := ComposerJSON(bytes.NewReader(b), int64(len(b))); err == nil || !strings.Contains(err.Error(), strings.TrimSpace(msg)) {
			t.Errorf("%v: err %v, want %q", files, err, msg)
		}
	}
	if _, err := ComposerJSON(strings.NewReader("not a zip"), 9); err == nil || !strings.Contains(err.Error(), "not a valid zip") {
		t.Errorf("corrupt zip: %v", err)
	}
}

func TestHostedIndexP2(t *testing.T) {
	x, _ := ParseHostedIndex(nil, "acme/lib")
	cj := map[string]any{"name": "acme/lib", "version": "9.9.9", "extra": map[string]any{"push": map[string]any{"password": "s3cret"}}}
	x.Versions["1.0.0.0"] = HostedVersion(cj, "acme/lib", "1.0.0", "1.0.0.0", "/r/zipball/acme/lib/1.0.0.0/refaa.zip", "aa", "2026-01-01T00:00:00Z", nil)
	x.Versions["dev-main"] = HostedVersion(cj, "acme/lib", "dev-main", "dev-main", "/r/zipball/x", "bb", "2026-01-01T00:00:00Z", nil)
	y, err := ParseHostedIndex(x.Marshal(), "acme/lib")
	if err != nil {
		t.Fatal(err)
	}
	stable, dev := string(y.P2(false)), string(y.P2(true))
	if !strings.Contains(stable, `"version":"1.0.0"`) || strings.Contains(stable, "dev-main") || strings.Contains(stable, "s3cret") {
		t.Errorf("stable p2: %s", stable)
	}
	if !strings.Contains(dev, "dev-main") || strings.Contains(dev, `"1.0.0.0"`) {
		t.Errorf("dev p2: %s", dev)
	}
	vs, err := Expand(y.P2(false), "acme/lib")
	if err != nil || len(vs) != 1 {
		t.Fatalf("Expand: %v %v", vs, err)
	}
	if d, ok := FindDist(vs, "1.0.0.0", "aa"); !ok || d.Shasum != "aa" {
		t.Errorf("FindDist: %v %v", d, ok)
	}
}

func TestWithAvailable(t *testing.T) {
	got := string(WithAvailable([]byte(`{"available-packages":["a/b"],"metadata-url":"/p2/%package%.json"}`), []string{"acme/lib", "a/b"}))
	if !strings.Contains(got, `"available-packages":["a/b","acme/lib"]`) {
		t.Errorf("got %s", got)
	}
	if got := string(WithAvailable([]byte(`{"metadata-url":"x"}`), []string{"acme/lib"})); strings.Contains(got, "acme") {
		t.Errorf("a root without the list got one: %s", got)
	}
}
