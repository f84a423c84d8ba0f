package main

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

var (
	mdLink    = regexp.MustCompile(`\[[^\]]+\]\(([^)\s]+)\)`)
	mdHeading = regexp.MustCompile(`(?m)^#{1,6} (.+)$`)
	slugDrop  = regexp.MustCompile(`[^a-z0-9 _-]`)
)

// slug is a heading's anchor as GitHub makes it.
func slug(h string) string {
	h = strings.ToLower(strings.TrimSpace(h))
	h = slugDrop.ReplaceAllString(h, "")
	return strings.ReplaceAll(h, " ", "-")
}

// Every relative link in the README and docs/ leads to a file that exists,
// and to a heading of it when it names one.
func TestDocLinksResolve(t *testing.T) {
	root := "../.."
	var files []string
	for _, f := range []string{"README.md", "CONTRIBUTING.md", "CHANGELOG.md", "BENCHMARKS.md"} {
		files = append(files, filepath.Join(root, f))
	}
	_ = filepath.WalkDir(filepath.Join(root, "docs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".md") {
			files = append(files, p)
		}
		return nil
	})
	anchors := map[string]map[string]bool{}
	anchorsOf := func(p string) map[string]bool {
		if a, ok := anchors[p]; ok {
			return a
		}
		a := map[string]bool{}
		b, _ := os.ReadFile(p)
		for _, m := range mdHeading.FindAllStringSubmatch(string(b), -1) {
			a[slug(m[1])] = true
		}
		anchors[p] = a
		return a
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		for _, m := range mdLink.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			path, anchor, _ := strings.Cut(target, "#")
			dest := f
			if path != "" {
				dest = filepath.Join(filepath.Dir(f), path)
				if _, err := os.Stat(dest); err != nil {
					t.Errorf("%s: link %s: no such file", f, target)
					continue
				}
			}
			if anchor != "" && strings.HasSuffix(dest, ".md") && !anchorsOf(dest)[anchor] {
				t.Errorf("%s: link %s: no such heading", f, target)
			}
		}
	}
}

// The compose stack passes every variable of the configuration to its
// proxies (set: passed; unset: the default), besides the two the image
// fixes (LISTEN_ADDR, STORAGE_LOCAL_DIR).
func TestComposeTakesEveryVariable(t *testing.T) {
	b, err := os.ReadFile("../../compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	compose := string(b)
	typ := reflect.TypeOf(Config{})
	for i := 0; i < typ.NumField(); i++ {
		key := typ.Field(i).Tag.Get("envconfig")
		if key == "" || key == "LISTEN_ADDR" || key == "STORAGE_LOCAL_DIR" {
			continue
		}
		if !regexp.MustCompile(`(?m)^\s+` + key + `:`).MatchString(compose) {
			t.Errorf("compose.yaml does not pass %s to the proxies", key)
		}
	}
}
