package rubygems

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"testing"
)

// A gem built by gem build 3.3 (testdata): its specification's name,
// version, runtime dependencies and Ruby requirement make the /info line
// rubygems.org would write.
func TestReadSpec(t *testing.T) {
	f, err := os.Open("testdata/hello-gem-1.0.0.gem")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := ReadSpec(f)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile("testdata/hello-gem-1.0.0.gem")
	sum := sha256.Sum256(b)
	h := hex.EncodeToString(sum[:])
	if want := "1.0.0 world-gem:>= 1.0&< 3|checksum:" + h + ",ruby:>= 2.7"; s.InfoLine(h) != want || s.File() != "hello-gem-1.0.0.gem" {
		t.Errorf("info line %q, file %q; want %q", s.InfoLine(h), s.File(), want)
	}
	if _, err := ReadSpec(f); err == nil {
		t.Errorf("a read past the end parsed")
	}
}
