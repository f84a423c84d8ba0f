package gomod

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"golang.org/x/mod/module"

	"github.com/mirror-proxy/mirror-proxy/hosted"
)

func spoolZip(t *testing.T, files map[string]string) *hosted.Spooled {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, body := range files {
		w, _ := zw.Create(name)
		w.Write([]byte(body))
	}
	zw.Close()
	sp, err := hosted.Spool(&buf, "", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sp.Remove)
	return sp
}

// A published zip is checked as the go command checks module zips.
func TestCheckModuleZip(t *testing.T) {
	mv := module.Version{Path: "corp.example.com/lib", Version: "v1.0.0"}
	p := "corp.example.com/lib@v1.0.0/"
	mod, err := checkModuleZip(mv, spoolZip(t, map[string]string{p + "go.mod": "module corp.example.com/lib\n", p + "lib.go": "package lib\n"}))
	if err != nil || mod != "module corp.example.com/lib\n" {
		t.Errorf("a good zip: %q %v", mod, err)
	}
	if mod, err := checkModuleZip(mv, spoolZip(t, map[string]string{p + "lib.go": "package lib\n"})); err != nil || !strings.HasPrefix(mod, "module corp.example.com/lib") {
		t.Errorf("a zip without go.mod: %q %v, want a go.mod naming the module", mod, err)
	}
	for what, files := range map[string]map[string]string{
		"another module's go.mod":  {p + "go.mod": "module corp.example.com/other\n"},
		"files outside the prefix": {"corp.example.com/lib@v1.0.1/lib.go": "package lib\n"},
		"a bad file name":          {p + "a\\b.go": "package lib\n"},
	} {
		if _, err := checkModuleZip(mv, spoolZip(t, files)); err == nil {
			t.Errorf("%s: accepted", what)
		}
	}
}

// The default checksum database is sum.golang.org with the go command's
// own key (cmd/go/internal/modfetch/key.go).
func TestDefaultOptions(t *testing.T) {
	o, err := ParseOptions(nil)
	if err != nil || len(o.SumDB) != 1 || o.SumDB[0].URL != "https://sum.golang.org" {
		t.Errorf("ParseOptions(nil): %+v %v", o, err)
	}
	if _, err := ParseOptions(map[string]json.RawMessage{"sumdb": json.RawMessage(`[{"key":"nonsense","url":"https://x"}]`)}); err == nil {
		t.Errorf("a bad verifier key was accepted")
	}
}
