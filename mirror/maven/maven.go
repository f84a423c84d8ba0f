// Package maven mirrors Maven repositories (the layout of
// https://maven.apache.org/repository/layout.html): maven-metadata.xml
// revalidated and served stale, every other file immutable once stored,
// each verified before it is stored against the upstream's checksum, and
// the .sha1, .md5, .sha256 and .sha512 of every file answered from the
// bytes the proxy serves.
package maven

import (
	"encoding/xml"
	"errors"
	"regexp"
	"strings"
)

// segmentRe is one segment of a repository path: a group part, an
// artifact id, a version or a file name.
var segmentRe = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._~+-]{0,199}$`)

// ChecksumAlgs are the checksum files answered beside every file, by
// extension.
var ChecksumAlgs = map[string]string{"sha1": "sha1", "md5": "md5", "sha256": "sha256", "sha512": "sha512"}

// Path is what a request names.
type Path struct {
	Path string // the whole path, checked
	File string // its last segment
	// Kind is "metadata" (a maven-metadata.xml), "checksum" (a .sha1,
	// .md5, .sha256 or .sha512 of Of) or "file".
	Kind string
	Of   string // for a checksum: the path it is the checksum of
	Alg  string // for a checksum: its algorithm
}

// ParsePath reads and checks a path under the mount (no leading "/").
func ParsePath(p string) (Path, error) {
	segs := strings.Split(p, "/")
	if len(segs) < 2 || len(segs) > 64 {
		return Path{}, errors.New("not a repository path: expected <group path>/<artifact>/[<version>/]<file>")
	}
	for _, s := range segs {
		if !segmentRe.MatchString(s) || strings.Contains(s, "..") {
			return Path{}, errors.New("not a repository path segment: " + s)
		}
	}
	mp := Path{Path: p, File: segs[len(segs)-1], Kind: "file"}
	if i := strings.LastIndexByte(mp.File, '.'); i > 0 {
		if alg, ok := ChecksumAlgs[mp.File[i+1:]]; ok {
			mp.Kind, mp.Alg, mp.Of = "checksum", alg, strings.TrimSuffix(p, mp.File[i:])
			return mp, nil
		}
	}
	if mp.File == "maven-metadata.xml" {
		mp.Kind = "metadata"
	}
	return mp, nil
}

// Metadata is a maven-metadata.xml (the parts the mirror reads).
type Metadata struct {
	XMLName    xml.Name `xml:"metadata"`
	GroupID    string   `xml:"groupId"`
	ArtifactID string   `xml:"artifactId"`
	Version    string   `xml:"version"`
	Versioning struct {
		Latest      string   `xml:"latest"`
		Release     string   `xml:"release"`
		Versions    []string `xml:"versions>version"`
		LastUpdated string   `xml:"lastUpdated"`
	} `xml:"versioning"`
}

// maxMetadata bounds a maven-metadata.xml.
const maxMetadata = 16 << 20

// ParseMetadata reads a maven-metadata.xml.
func ParseMetadata(b []byte) (*Metadata, error) {
	if len(b) > maxMetadata {
		return nil, errors.New("maven-metadata.xml larger than 16 MiB")
	}
	var m Metadata
	if err := xml.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return &m, nil
}
