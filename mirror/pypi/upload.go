package pypi

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/textproto"
	"sort"
	"strconv"
	"strings"

	"github.com/mirror-proxy/mirror-proxy/fetch"
)

// maxMetadata caps a core metadata file read from an upload.
const maxMetadata = 4 << 20

// DistFile is what a distribution's file name says.
type DistFile struct {
	Name    string // the project part, as written
	Version string
	Wheel   bool   // a wheel; else an sdist
	Ext     string // ".whl", ".tar.gz" or ".zip"
}

// ParseDistFilename reads a wheel name ({name}-{version}(-{build})?-{py}-
// {abi}-{platform}.whl) or an sdist name ({name}-{version}.tar.gz or .zip).
func ParseDistFilename(filename string) (DistFile, error) {
	if !ValidFilename(filename) {
		return DistFile{}, fmt.Errorf("%q is not a valid distribution file name", filename)
	}
	if base, ok := strings.CutSuffix(filename, ".whl"); ok {
		parts := strings.Split(base, "-")
		if len(parts) != 5 && len(parts) != 6 {
			return DistFile{}, fmt.Errorf("%q is not a wheel file name ({name}-{version}(-{build})?-{python}-{abi}-{platform}.whl)", filename)
		}
		for _, p := range parts {
			if p == "" {
				return DistFile{}, fmt.Errorf("%q is not a wheel file name", filename)
			}
		}
		return DistFile{Name: parts[0], Version: parts[1], Wheel: true, Ext: ".whl"}, nil
	}
	for _, ext := range []string{".tar.gz", ".zip"} {
		if base, ok := strings.CutSuffix(filename, ext); ok {
			i := strings.LastIndexByte(base, '-')
			if i <= 0 || i == len(base)-1 {
				break
			}
			return DistFile{Name: base[:i], Version: base[i+1:], Ext: ext}, nil
		}
	}
	return DistFile{}, fmt.Errorf("%q is neither a wheel (.whl) nor an sdist (.tar.gz, .zip)", filename)
}

// SameVersion tells whether two spellings are one version (PEP 440's
// normal form: 1.0, 1.0.0 and V1.0 are one), as a file name and the form's
// version field may differ.
func SameVersion(a, b string) bool { return CanonicalVersion(a) == CanonicalVersion(b) }

// WheelMetadata returns the wheel's *.dist-info/METADATA.
func WheelMetadata(r io.ReaderAt, size int64) ([]byte, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, fmt.Errorf("the wheel is not a valid zip archive: %v", err)
	}
	var found *zip.File
	for _, f := range zr.File {
		dir, file, ok := strings.Cut(f.Name, "/")
		if ok && file == "METADATA" && strings.HasSuffix(dir, ".dist-info") {
			if found != nil {
				return nil, errors.New("the wheel holds more than one .dist-info/METADATA")
			}
			found = f
		}
	}
	if found == nil {
		return nil, errors.New("the wheel holds no .dist-info/METADATA")
	}
	rc, err := found.Open()
	if err != nil {
		return nil, fmt.Errorf("the wheel's METADATA cannot be read: %v", err)
	}
	defer rc.Close()
	return readMetadata(rc)
}

// SdistMetadata returns the sdist's PKG-INFO ({name}-{version}/PKG-INFO).
func SdistMetadata(r io.ReaderAt, size int64, ext string) ([]byte, error) {
	isPKGInfo := func(name string) bool {
		_, file, ok := strings.Cut(strings.TrimPrefix(name, "./"), "/")
		return ok && file == "PKG-INFO"
	}
	if ext == ".zip" {
		zr, err := zip.NewReader(r, size)
		if err != nil {
			return nil, fmt.Errorf("the sdist is not a valid zip archive: %v", err)
		}
		for _, f := range zr.File {
			if isPKGInfo(f.Name) {
				rc, err := f.Open()
				if err != nil {
					return nil, fmt.Errorf("the sdist's PKG-INFO cannot be read: %v", err)
				}
				defer rc.Close()
				return readMetadata(rc)
			}
		}
		return nil, errors.New("the sdist holds no PKG-INFO")
	}
	zr, err := gzip.NewReader(io.NewSectionReader(r, 0, size))
	if err != nil {
		return nil, fmt.Errorf("the sdist is not a valid .tar.gz: %v", err)
	}
	tr := tar.NewReader(fetch.Unpacked(zr, size))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil, errors.New("the sdist holds no PKG-INFO")
		}
		if err != nil {
			return nil, fmt.Errorf("the sdist is not a valid .tar.gz: %v", err)
		}
		if h.Typeflag == tar.TypeReg && isPKGInfo(h.Name) {
			return readMetadata(tr)
		}
	}
}

func readMetadata(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxMetadata+1))
	if err != nil {
		return nil, fmt.Errorf("core metadata cannot be read: %v", err)
	}
	if len(b) > maxMetadata {
		return nil, errors.New("core metadata larger than 4 MiB")
	}
	return b, nil
}

// MetadataHeader reads the header fields of a core metadata file (the
// email-style part before the description).
func MetadataHeader(meta []byte) textproto.MIMEHeader {
	tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(append(bytes.TrimRight(meta, "\n"), '\n', '\n'))))
	h, _ := tp.ReadMIMEHeader()
	if h == nil {
		h = textproto.MIMEHeader{}
	}
	return h
}

// ReliableMetadata reports whether an sdist's PKG-INFO may be advertised
// as its core metadata: PEP 643 makes it trustworthy from metadata 2.2 on
// for the fields not marked Dynamic.
func ReliableMetadata(h textproto.MIMEHeader) bool {
	v := h.Get("Metadata-Version")
	major, minor, _ := strings.Cut(v, ".")
	ma, err1 := strconv.Atoi(major)
	mi, err2 := strconv.Atoi(minor)
	if err1 != nil || err2 != nil || ma < 2 || (ma == 2 && mi < 2) {
		return false
	}
	for _, d := range h.Values("Dynamic") {
		switch strings.ToLower(strings.TrimSpace(d)) {
		case "requires-dist", "requires-python":
			return false
		}
	}
	return true
}

// HostedFile is one published file of a hosted project.
type HostedFile struct {
	Filename       string `json:"filename"`
	Version        string `json:"version"`
	SHA256         string `json:"sha256"`
	Size           int64  `json:"size"`
	UploadTime     string `json:"upload-time"`
	RequiresPython string `json:"requires-python,omitempty"`
	// MetadataSHA256 is the sha256 of the core metadata kept beside the
	// file ("": none is served).
	MetadataSHA256 string `json:"metadata-sha256,omitempty"`
}

// HostedIndex is the index object of a hosted project.
type HostedIndex struct {
	Name  string       `json:"name"`
	Files []HostedFile `json:"files"`
}

// ParseHostedIndex reads a stored index (nil: a new, empty one).
func ParseHostedIndex(b []byte, name string) (*HostedIndex, error) {
	x := &HostedIndex{Name: name}
	if len(b) == 0 {
		return x, nil
	}
	if err := json.Unmarshal(b, x); err != nil {
		return nil, fmt.Errorf("index of %s is damaged: %w", name, err)
	}
	return x, nil
}

// Marshal is the stored form.
func (x *HostedIndex) Marshal() []byte { b, _ := json.Marshal(x); return b }

// Find returns the file named filename.
// Clash tells what publishing f (whose file name reads df) would be, as
// PyPI decides: the same file name with the same bytes is an identical
// retry (same); with other bytes it is refused ("File already exists");
// so is a second sdist of a release, or a wheel whose tags a file of the
// release has already, under however its name and version are spelled
// (MyPkg-1.0.tar.gz next to mypkg-1.0.0.tar.gz).
func (x *HostedIndex) Clash(f HostedFile, df DistFile) (same bool, err error) {
	if g, ok := x.Find(f.Filename); ok {
		if g.SHA256 == f.SHA256 {
			return true, nil
		}
		return false, fmt.Errorf("File already exists: %q was published with other contents; files are immutable (upload a new version)", f.Filename)
	}
	version := CanonicalVersion(df.Version)
	for _, g := range x.Files {
		gf, err := ParseDistFilename(g.Filename)
		if err != nil || CanonicalVersion(gf.Version) != version {
			continue
		}
		if !gf.Wheel && !df.Wheel {
			return false, fmt.Errorf("Only one sdist may be uploaded per release: %q is release %s's", g.Filename, version)
		}
		if gf.Wheel && df.Wheel && wheelTags(g.Filename) == wheelTags(f.Filename) {
			return false, fmt.Errorf("File already exists: %q is release %s's wheel with these tags", g.Filename, version)
		}
	}
	return false, nil
}

// wheelTags is a wheel file name past its name and version (build tag,
// python, abi and platform tags), lowered.
func wheelTags(filename string) string {
	parts := strings.SplitN(strings.ToLower(filename), "-", 3)
	if len(parts) < 3 {
		return filename
	}
	return parts[2]
}

func (x *HostedIndex) Find(filename string) (HostedFile, bool) {
	for _, f := range x.Files {
		if f.Filename == filename {
			return f, true
		}
	}
	return HostedFile{}, false
}

// Project is the index as the model the simple pages are rendered from:
// file URLs lead to the proxy's /files/ route like mirrored ones.
func (x *HostedIndex) Project() *Project {
	p := &Project{Name: x.Name}
	versions := map[string]bool{}
	for _, f := range x.Files {
		size := f.Size
		pf := File{Filename: f.Filename, URL: "hosted:" + f.Filename, Hashes: map[string]string{"sha256": f.SHA256},
			RequiresPython: f.RequiresPython, Size: &size, UploadTime: f.UploadTime}
		if f.MetadataSHA256 != "" {
			pf.CoreMetadata = map[string]string{"sha256": f.MetadataSHA256}
		}
		p.Files = append(p.Files, pf)
		versions[f.Version] = true
	}
	p.Versions = make([]string, 0, len(versions))
	for v := range versions {
		p.Versions = append(p.Versions, v)
	}
	sort.Strings(p.Versions)
	return p
}
