package rubygems

import (
	"strings"
	"testing"
)

func TestNameCandidates(t *testing.T) {
	got, err := NameCandidates("foo-bar-1.2.3-x86_64-linux.gem")
	if err != nil || strings.Join(got, " ") != "foo-bar" {
		t.Errorf("candidates: %v %v", got, err)
	}
	// A name may end in digits after a dash: every split is tried, the
	// longest name first.
	if got, err := NameCandidates("foo-2-1.0.gem"); err != nil || strings.Join(got, " ") != "foo-2 foo" {
		t.Errorf("candidates: %v %v", got, err)
	}
	for _, bad := range []string{"../x-1.0.gem", "x.gem", "x-1.0.tgz", "-1.0.gem"} {
		if _, err := NameCandidates(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseInfo(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	lines, err := ParseInfo([]byte("---\n1.0.0 |checksum:" + sum + "\n1.1.0-java rack:>= 2.0&< 4|checksum:" + sum + ",ruby:>= 2.7\n"))
	if err != nil || len(lines) != 2 || lines[1].Version != "1.1.0-java" || lines[1].Checksum != sum {
		t.Fatalf("%+v %v", lines, err)
	}
	if l, ok := ParseGemFile("foo-1.1.0-java.gem", lines, "foo"); !ok || l.Version != "1.1.0-java" {
		t.Errorf("a platform gem: %+v %v", l, ok)
	}
	if _, err := ParseInfo([]byte("1.0.0 |ruby:>= 2\n")); err == nil {
		t.Errorf("a line without a checksum was accepted")
	}
}
