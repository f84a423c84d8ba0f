package pypi

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/fetch"
	"github.com/mirror-proxy/mirror-proxy/internal/hostile"
)

func TestParseDistFilename(t *testing.T) {
	for in, want := range map[string]DistFile{
		"my_pkg-1.0.0-py3-none-any.whl":        {Name: "my_pkg", Version: "1.0.0", Wheel: true, Ext: ".whl"},
		"my_pkg-1.0.0-1-cp312-cp312-linux.whl": {Name: "my_pkg", Version: "1.0.0", Wheel: true, Ext: ".whl"},
		"my-pkg-1.0.0.tar.gz":                  {Name: "my-pkg", Version: "1.0.0", Ext: ".tar.gz"},
		"my_pkg-2.0rc1.zip":                    {Name: "my_pkg", Version: "2.0rc1", Ext: ".zip"},
	} {
		got, err := ParseDistFilename(in)
		if err != nil || got != want {
			t.Errorf("ParseDistFilename(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"pkg.whl", "pkg-1.0-py3.whl", "pkg.tar.gz", "pkg-1.0.exe", "../x-1.0.tar.gz", "pkg-.tar.gz"} {
		if got, err := ParseDistFilename(bad); err == nil {
			t.Errorf("ParseDistFilename(%q) = %+v, want an error", bad, got)
		}
	}
}

const meta = "Metadata-Version: 2.2\nName: My-Pkg\nVersion: 1.0.0\nRequires-Python: >=3.8\nRequires-Dist: requests\n\nLong description\n"

func TestWheelAndSdistMetadata(t *testing.T) {
	var zb bytes.Buffer
	zw := zip.NewWriter(&zb)
	w, _ := zw.Create("my_pkg-1.0.0.dist-info/METADATA")
	w.Write([]byte(meta))
	w, _ = zw.Create("my_pkg/__init__.py")
	zw.Close()
	got, err := WheelMetadata(bytes.NewReader(zb.Bytes()), int64(zb.Len()))
	if err != nil || string(got) != meta {
		t.Fatalf("wheel: %q %v", got, err)
	}
	h := MetadataHeader(got)
	if h.Get("Name") != "My-Pkg" || h.Get("Requires-Python") != ">=3.8" || !ReliableMetadata(h) {
		t.Errorf("header: %v", h)
	}
	var tb bytes.Buffer
	gz := gzip.NewWriter(&tb)
	tw := tar.NewWriter(gz)
	tw.WriteHeader(&tar.Header{Name: "my_pkg-1.0.0/PKG-INFO", Mode: 0o644, Size: int64(len(meta)), Typeflag: tar.TypeReg})
	tw.Write([]byte(meta))
	tw.Close()
	gz.Close()
	got, err = SdistMetadata(bytes.NewReader(tb.Bytes()), int64(tb.Len()), ".tar.gz")
	if err != nil || string(got) != meta {
		t.Fatalf("sdist: %q %v", got, err)
	}
	if _, err := WheelMetadata(strings.NewReader("junk"), 4); err == nil {
		t.Error("a corrupt wheel was read")
	}
	if _, err := SdistMetadata(strings.NewReader("junk"), 4, ".tar.gz"); err == nil {
		t.Error("a corrupt sdist was read")
	}
	if ReliableMetadata(MetadataHeader([]byte("Metadata-Version: 2.1\nName: x\n"))) ||
		ReliableMetadata(MetadataHeader([]byte("Metadata-Version: 2.2\nName: x\nDynamic: Requires-Dist\n"))) {
		t.Error("unreliable sdist metadata taken as reliable")
	}
}

func TestHostedIndexProject(t *testing.T) {
	x, _ := ParseHostedIndex(nil, "my-pkg")
	x.Files = append(x.Files, HostedFile{Filename: "my_pkg-1.0.0-py3-none-any.whl", Version: "1.0.0", SHA256: strings.Repeat("a", 64),
		Size: 10, UploadTime: "2026-01-01T00:00:00.000000Z", RequiresPython: ">=3.8", MetadataSHA256: strings.Repeat("b", 64)})
	p := x.Project()
	js := string(p.RenderJSON("my-pkg"))
	for _, want := range []string{`"api-version":"1.1"`, `"upload-time":"2026-01-01T00:00:00.000000Z"`, `"size":10`, `"requires-python":"\u003e=3.8"`,
		`"core-metadata":{"sha256":"bbbb`, `"url":"../../files/my-pkg/aaaa`, `"versions":["1.0.0"]`} {
		if !strings.Contains(js, want) {
			t.Errorf("JSON page lacks %s: %s", want, js)
		}
	}
	if html := string(p.RenderHTML("my-pkg")); !strings.Contains(html, `data-core-metadata="sha256=bbbb`) || !strings.Contains(html, `#sha256=aaaa`) {
		t.Errorf("HTML page: %s", html)
	}
}

// An sdist whose PKG-INFO comes after 1 GiB of zeros is refused at the
// unpack bound, not decompressed to the end.
func TestSdistBombIsRefused(t *testing.T) {
	bomb := hostile.TarGzBomb("bomb-1.0/blob.bin", 1024, "bomb-1.0/PKG-INFO", "Metadata-Version: 2.1\nName: bomb\nVersion: 1.0\n")
	start := time.Now()
	_, err := SdistMetadata(bytes.NewReader(bomb), int64(len(bomb)), ".tar.gz")
	if !errors.Is(err, fetch.ErrUnpackedTooLarge) && (err == nil || !strings.Contains(err.Error(), "bomb")) {
		t.Errorf("sdist bomb: %v, want refused as a bomb", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("refusing it took %v", d)
	}
}
