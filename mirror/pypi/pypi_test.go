package pypi

import (
	"regexp"
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{"Foo.Bar": "foo-bar", "foo_bar": "foo-bar", "FOO--bar": "foo-bar", "a._-b": "a-b",
		"foo-bar": "foo-bar", "a-_b": "a-b", "x": "x", "Django": "django", "a.-.b-c": "a-b-c"} {
		if got := Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHTMLRoundTrip(t *testing.T) {
	page := `<html><body>
<a href="../../packages/x/pkg-1.0-py3-none-any.whl#sha256=` + strings.Repeat("a", 64) + `" data-requires-python="&gt;=3.8" data-yanked="bad" data-dist-info-metadata="sha256=` + strings.Repeat("b", 64) + `">pkg-1.0-py3-none-any.whl</a>
<a href="https://files.example/pkg-0.9.tar.gz">pkg-0.9.tar.gz</a>
</body></html>`
	p, err := ParseProject([]byte(page), "text/html", "https://up.example/simple/pkg/")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Files) != 2 {
		t.Fatalf("files: %+v", p.Files)
	}
	f := p.Files[0]
	if f.URL != "https://up.example/packages/x/pkg-1.0-py3-none-any.whl" || f.RequiresPython != ">=3.8" || f.Yanked != "bad" ||
		f.MetadataSHA256() != strings.Repeat("b", 64) || f.FileKey() != strings.Repeat("a", 64) {
		t.Errorf("parsed %+v", f)
	}
	if k := p.Files[1].FileKey(); !strings.HasPrefix(k, "u-") {
		t.Errorf("a file without sha256 must get a URL-derived key, got %q", k)
	}
	html := string(p.RenderHTML("pkg"))
	for _, want := range []string{`data-requires-python="&gt;=3.8"`, `data-yanked="bad"`, `data-core-metadata="sha256=bbbb`, `data-dist-info-metadata="sha256=bbbb`,
		`href="../../files/pkg/` + strings.Repeat("a", 64) + `/pkg-1.0-py3-none-any.whl#sha256=aaaa`} {
		if !strings.Contains(html, want) {
			t.Errorf("HTML lacks %s:\n%s", want, html)
		}
	}
	js := string(p.RenderJSON("pkg"))
	if strings.Contains(js, "dist-info-metadata") || !strings.Contains(js, `"api-version":"1.0"`) || strings.Contains(js, "up.example") {
		t.Errorf("JSON: %s", js)
	}
}

// The hand-written name functions agree with the regular expressions of
// PEP 503 and PEP 508 they replace.
func FuzzNameFunctions(f *testing.F) {
	for _, s := range []string{"Foo_Bar", "a", "a--b", "-a", "a.", "Ünï", "zope.interface", "A__.-B", "x_", "ab-c", "1"} {
		f.Add(s)
	}
	runs := regexp.MustCompile(`[-_.]+`)
	valid := regexp.MustCompile(`^([a-z0-9]|[a-z0-9][a-z0-9._-]*[a-z0-9])$`)
	f.Fuzz(func(t *testing.T, name string) {
		if got, want := Normalize(name), strings.ToLower(runs.ReplaceAllString(name, "-")); got != want {
			t.Fatalf("Normalize(%q) = %q, want %q", name, got, want)
		}
		// Outside ASCII the expression was too lenient: strings.ToLower
		// makes the Kelvin sign a "k". Such names are invalid now.
		want := len(name) <= 200 && valid.MatchString(strings.ToLower(name)) && !strings.ContainsFunc(name, func(r rune) bool { return r >= 0x80 })
		if got := ValidName(name); got != want {
			t.Fatalf("ValidName(%q) = %v, want %v", name, got, want)
		}
	})
}

func TestNegotiate(t *testing.T) {
	for _, c := range []struct{ accept, format, want string }{
		{"", "", TextHTML},
		{"*/*", "", TextHTML},
		{"text/*", "", TextHTML},
		{"text/html", "", TextHTML},
		{JSONType, "", JSONType},
		{"Application/VND.pypi.simple.v1+JSON", "", JSONType},
		{"application/vnd.pypi.simple.latest+json", "", JSONType},
		{HTMLType, "", HTMLType},
		{"application/vnd.pypi.simple.latest+html", "", HTMLType},
		// pip's header
		{"application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01", "", JSONType},
		{"application/vnd.pypi.simple.v1+json; q=0.1, application/vnd.pypi.simple.v1+html", "", HTMLType},
		{"application/json", "", ""},
		{"application/json, */*;q=0.1", "", TextHTML},
		{"text/html", "json", JSONType},
		{"", "application/vnd.pypi.simple.v1 json", JSONType},
		{"", "xml", ""},
	} {
		got, err := Negotiate(c.accept, c.format)
		if got != c.want || (err != nil) != (c.want == "") {
			t.Errorf("Negotiate(%q, %q) = %q, %v; want %q", c.accept, c.format, got, err, c.want)
		}
		// One type without parameters takes a shortcut: it must answer
		// as the full parse of the same type does.
		if c.format == "" && c.accept != "" && !strings.ContainsAny(c.accept, ",;") {
			full, ferr := Negotiate(c.accept+";q=1", "")
			if full != got || (ferr != nil) != (err != nil) {
				t.Errorf("Negotiate(%q) = %q, %v but with ;q=1 %q, %v", c.accept, got, err, full, ferr)
			}
		}
	}
}
