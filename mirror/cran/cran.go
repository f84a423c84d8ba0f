// Package cran mirrors CRAN-like R repositories: the PACKAGES indexes
// (mutable, revalidated, served stale when the upstream fails), source
// tarballs verified against the index's MD5sum before they are stored,
// archived versions, and binary trees (bin/..., Posit Package Manager's
// __linux__/<distro>/...) cached as immutable files.
package cran

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"
)

// Entry is one record of a PACKAGES file.
type Entry struct {
	Package, Version, MD5sum string
	// Published is Date/Publication (zero when the index has none).
	Published time.Time
	// Raw is the record as the index wrote it (without the blank line).
	Raw []byte
}

// Index is a parsed PACKAGES file.
type Index struct {
	Entries []Entry
	byFile  map[string]int // "pkg_ver" → entry
}

// maxIndexBytes bounds a decompressed PACKAGES.gz (CRAN's is about 12 MB):
// a small gzip bomb must not take a GB of memory.
const maxIndexBytes = 64 << 20

// maxIndexRecords bounds a PACKAGES file (CRAN has about 22,000).
const maxIndexRecords = 500_000

// ParseIndex reads a PACKAGES file (Debian control format: records
// separated by blank lines, "Field: value" lines, continuation lines
// indented). PACKAGES.gz is gunzipped first.
func ParseIndex(b []byte) (*Index, error) {
	if len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("PACKAGES.gz: %w", err)
		}
		if b, err = io.ReadAll(io.LimitReader(zr, maxIndexBytes+1)); err != nil {
			return nil, fmt.Errorf("PACKAGES.gz: %w", err)
		}
		if len(b) > maxIndexBytes {
			return nil, fmt.Errorf("PACKAGES.gz decompresses to more than %d MiB", maxIndexBytes>>20)
		}
	}
	if bytes.HasPrefix(bytes.TrimSpace(b), []byte("<")) {
		return nil, fmt.Errorf("PACKAGES is HTML, not an index")
	}
	idx := &Index{byFile: map[string]int{}}
	for _, rec := range bytes.Split(bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")), []byte("\n\n")) {
		rec = bytes.Trim(rec, "\n")
		if len(rec) == 0 {
			continue
		}
		e := Entry{Raw: rec}
		for _, line := range bytes.Split(rec, []byte("\n")) {
			if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
				continue
			}
			k, v, ok := bytes.Cut(line, []byte(":"))
			if !ok {
				return nil, fmt.Errorf("PACKAGES: %q is not a field", truncate(string(line), 80))
			}
			val := strings.TrimSpace(string(v))
			switch string(k) {
			case "Package":
				e.Package = val
			case "Version":
				e.Version = val
			case "MD5sum":
				e.MD5sum = val
			case "Date/Publication":
				e.Published = published(val)
			}
		}
		if !ValidName(e.Package) || !validVersion(e.Version) {
			return nil, fmt.Errorf("PACKAGES: a record without a valid Package and Version (%q %q)", truncate(e.Package, 80), truncate(e.Version, 80))
		}
		if len(idx.Entries) >= maxIndexRecords {
			return nil, fmt.Errorf("PACKAGES: more than %d records", maxIndexRecords)
		}
		idx.byFile[e.Package+"_"+e.Version] = len(idx.Entries)
		idx.Entries = append(idx.Entries, e)
	}
	return idx, nil
}

// Find returns the entry of pkg at version.
func (idx *Index) Find(pkg, version string) (Entry, bool) {
	i, ok := idx.byFile[pkg+"_"+version]
	if !ok {
		return Entry{}, false
	}
	return idx.Entries[i], true
}

// Render writes entries as a PACKAGES file.
func Render(entries []Entry) []byte {
	var b bytes.Buffer
	for _, e := range entries {
		b.Write(e.Raw)
		b.WriteString("\n\n")
	}
	return b.Bytes()
}

// Gzip compresses a rendered index (PACKAGES.gz).
func Gzip(b []byte) []byte {
	var out bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&out, gzip.BestCompression)
	zw.Write(b)
	zw.Close()
	return out.Bytes()
}

func published(s string) time.Time {
	for _, layout := range []string{"2006-01-02 15:04:05 MST", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}

var (
	nameRe    = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9.]*$`)
	versionRe = regexp.MustCompile(`^[0-9]+([.-][0-9]+)+$`)
	// fileRe is a package file: source tarball (.tar.gz), macOS binary
	// (.tgz) or Windows binary (.zip).
	fileRe = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9.]*)_([0-9]+(?:[.-][0-9]+)+)\.(tar\.gz|tgz|zip)$`)
)

// ValidName reports whether s is an R package name.
func ValidName(s string) bool { return len(s) <= 200 && nameRe.MatchString(s) }

func validVersion(s string) bool { return len(s) <= 100 && versionRe.MatchString(s) }

// ParseFile splits a package file name into package, version and type.
func ParseFile(file string) (pkg, version, typ string, ok bool) {
	m := fileRe.FindStringSubmatch(file)
	if m == nil || len(file) > 300 {
		return "", "", "", false
	}
	return m[1], m[2], m[3], true
}

// IsIndex reports whether file is one of a repository directory's
// indexes.
func IsIndex(file string) bool {
	return file == "PACKAGES" || file == "PACKAGES.gz" || file == "PACKAGES.rds"
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// rAgent finds R's version and platform in a User-Agent ("R (4.2.2
// x86_64-pc-linux-gnu x86_64 linux-gnu)"), as Posit Package Manager reads
// them to choose binaries: "4.2", "x86_64-pc-linux-gnu".
var rAgentRe = regexp.MustCompile(`R \(([0-9]+\.[0-9]+)\.[0-9]+ ([A-Za-z0-9_.-]+)[ A-Za-z0-9_.-]*\)`)

// RAgent returns the R part of a User-Agent and the storage key segment
// it selects ("" and "any" for clients that do not say).
func RAgent(ua string) (agent, segment string) {
	m := rAgentRe.FindStringSubmatch(ua)
	if m == nil {
		return "", "any"
	}
	return m[0], "R-" + m[1] + "-" + m[2]
}
