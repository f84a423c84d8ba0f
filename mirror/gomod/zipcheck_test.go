package gomod

import (
	"archive/zip"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/mod/module"
)

// A module zip no checksum database checks (noSumCheck) is still checked
// by golang.org/x/mod/zip's rules: a file outside the module's prefix is
// refused, a proper zip passes.
func TestZipCheckRefusesBadModuleZips(t *testing.T) {
	mv := module.Version{Path: "corp.example.com/lib", Version: "v1.0.0"}
	write := func(names ...string) *os.File {
		f, err := os.Create(filepath.Join(t.TempDir(), "m.zip"))
		if err != nil {
			t.Fatal(err)
		}
		zw := zip.NewWriter(f)
		for _, n := range names {
			w, _ := zw.Create(n)
			w.Write([]byte("package lib\n"))
		}
		zw.Close()
		t.Cleanup(func() { f.Close() })
		return f
	}
	size := func(f *os.File) int64 { fi, _ := f.Stat(); return fi.Size() }
	good := write("corp.example.com/lib@v1.0.0/lib.go")
	if err := zipCheck(mv)(good, size(good)); err != nil {
		t.Errorf("a good module zip: %v", err)
	}
	bad := write("corp.example.com/lib@v1.0.0/lib.go", "elsewhere/evil.go")
	if err := zipCheck(mv)(bad, size(bad)); err == nil {
		t.Errorf("a zip with a file outside the module's prefix passed")
	}
}
