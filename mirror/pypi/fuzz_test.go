package pypi

import (
	"encoding/json"
	"strings"
	"testing"
)

var fuzzTypes = []string{JSONType, TextHTML, "application/json", ""}

// FuzzProject: whatever an upstream sends, the parser either refuses it or
// yields a model whose pages render as valid JSON and as HTML that parses
// back to the same files, with no markup from the upstream, and whose
// stored form reads back the same.
func FuzzProject(f *testing.F) {
	f.Add([]byte(`{"meta":{"api-version":"1.1"},"name":"p","files":[{"filename":"p-1.0.tar.gz","url":"/f/p-1.0.tar.gz","hashes":{"sha256":"`+strings.Repeat("a", 64)+`"},"core-metadata":{"sha256":"`+strings.Repeat("b", 64)+`"},"size":3,"yanked":"why","requires-python":">=3"}]}`), uint8(0))
	f.Add([]byte(`<a href="../../f/p-1.0.whl#sha256=`+strings.Repeat("c", 64)+`" data-requires-python="&gt;=3" data-yanked="" data-core-metadata="sha256=`+strings.Repeat("d", 64)+`">p-1.0.whl</a>`), uint8(1))
	f.Add([]byte(`<a href="x">"><script>alert(1)</script></a><a href="javascript:alert(1)">j-1.0.tar.gz</a>`), uint8(1))
	f.Fuzz(func(t *testing.T, body []byte, typ uint8) {
		p, err := ParseProject(body, fuzzTypes[int(typ)%len(fuzzTypes)], "https://up.example/simple/p/")
		if err != nil {
			return
		}
		for i := range p.Files {
			if !ValidFilename(p.Files[i].Filename) {
				t.Fatalf("kept an unservable file name %q", p.Files[i].Filename)
			}
		}
		js := p.RenderJSON("p")
		if !json.Valid(js) {
			t.Fatalf("rendered JSON is invalid: %s", js)
		}
		html := p.RenderHTML("p")
		back, err := ParseProject(html, TextHTML, "https://proxy.example/m/simple/p/")
		if err != nil || len(back.Files) != len(p.Files) {
			t.Fatalf("rendered HTML does not parse back (%v): %d of %d files\n%s", err, len(back.Files), len(p.Files), html)
		}
		for _, bad := range []string{"<script", "<img", "javascript:"} {
			if strings.Contains(strings.ToLower(string(html)), bad) {
				t.Fatalf("rendered HTML carries %q:\n%s", bad, html)
			}
		}
		stored, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		again, err := Unmarshal(stored)
		if err != nil || len(again.Files) != len(p.Files) {
			t.Fatalf("stored page does not read back (%v)", err)
		}
	})
}

// FuzzIndex: the root list keeps only valid project names and renders
// them as JSON and HTML without markup.
func FuzzIndex(f *testing.F) {
	f.Add([]byte(`<a href="a/">a</a><a href="javascript:x/">javascript:x</a>`), false)
	f.Add([]byte(`{"meta":{"api-version":"1.0"},"projects":[{"name":"Foo.Bar"},{"name":"<b>"}]}`), true)
	f.Fuzz(func(t *testing.T, body []byte, isJSON bool) {
		ct := TextHTML
		if isJSON {
			ct = JSONType
		}
		idx, err := ParseIndex(body, ct)
		if err != nil {
			return
		}
		back := UnmarshalIndex(idx.Marshal())
		if len(back.Names) != len(idx.Names) {
			t.Fatalf("stored index reads back %d of %d names", len(back.Names), len(idx.Names))
		}
		if !json.Valid(idx.RenderJSON()) {
			t.Fatal("invalid JSON")
		}
		h := strings.ToLower(string(idx.RenderHTML()))
		if strings.Contains(h, "javascript:") || strings.Count(h, "<a ") != len(idx.Names) {
			t.Fatalf("bad HTML:\n%s", h)
		}
	})
}
