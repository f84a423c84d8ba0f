// Package rubygems mirrors RubyGems repositories: the compact index
// (/versions, /info/<gem>, /names, as Bundler reads it), the legacy full
// index the gem command reads (specs.4.8.gz, latest_specs.4.8.gz,
// prerelease_specs.4.8.gz, quick/Marshal.4.8/<spec>.gemspec.rz), and
// /gems/<gem>-<version>[-<platform>].gem, verified before it is stored
// against the checksum: of its /info line.
package rubygems

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// nameRe is a gem name as rubygems.org takes it.
var nameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ValidName reports whether s is a gem name.
func ValidName(s string) bool { return nameRe.MatchString(s) }

// InfoLine is one version of a gem's /info file.
type InfoLine struct {
	Version  string // with -<platform> when not ruby
	Checksum string // sha256 hex
	Line     string
}

// ParseInfo reads an /info/<gem> file: an optional "---" line, then lines
// "<version>[-<platform>] <deps>|checksum:<sha256>[,ruby:...][,rubygems:...]".
func ParseInfo(b []byte) ([]InfoLine, error) {
	var out []InfoLine
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || line == "---" {
			continue
		}
		version, rest, ok := strings.Cut(line, " ")
		if !ok || version == "" {
			return nil, fmt.Errorf("info line %d: no version", n)
		}
		_, reqs, ok := strings.Cut(rest, "|")
		if !ok {
			return nil, fmt.Errorf("info line %d: no requirements after |", n)
		}
		il := InfoLine{Version: version, Line: line}
		for _, r := range strings.Split(reqs, ",") {
			if sum, ok := strings.CutPrefix(r, "checksum:"); ok {
				il.Checksum = sum
			}
		}
		if len(il.Checksum) != 64 {
			return nil, fmt.Errorf("info line %d: no sha256 checksum", n)
		}
		out = append(out, il)
	}
	return out, sc.Err()
}

// ParseGemFile reads a gem file name, <name>-<version>[-<platform>].gem,
// against the versions the gem's /info lists: the name is known (from the
// URL it is asked at), so the rest must be one of them.
func ParseGemFile(file string, lines []InfoLine, name string) (InfoLine, bool) {
	stem, ok := strings.CutSuffix(file, ".gem")
	if !ok {
		return InfoLine{}, false
	}
	v, ok := strings.CutPrefix(stem, name+"-")
	if !ok {
		return InfoLine{}, false
	}
	for _, l := range lines {
		if l.Version == v {
			return l, true
		}
	}
	return InfoLine{}, false
}

// gemFileRe splits a gem file name into a candidate name and the rest:
// names may contain "-", so every split is a candidate.
var gemFileRe = regexp.MustCompile(`^[A-Za-z0-9._-]+\.gem$`)

// NameCandidates are the gem names a file name may be of, longest first
// ("foo-bar-1.0.gem": "foo-bar", "foo").
func NameCandidates(file string) ([]string, error) {
	if !gemFileRe.MatchString(file) {
		return nil, errors.New("not a gem file name: <gem>-<version>[-<platform>].gem")
	}
	stem := strings.TrimSuffix(file, ".gem")
	var out []string
	for i := len(stem) - 1; i > 0; i-- {
		if stem[i] == '-' && i+1 < len(stem) && stem[i+1] >= '0' && stem[i+1] <= '9' && ValidName(stem[:i]) {
			out = append(out, stem[:i])
		}
	}
	if len(out) == 0 {
		return nil, errors.New("not a gem file name: <gem>-<version>[-<platform>].gem")
	}
	return out, nil
}
