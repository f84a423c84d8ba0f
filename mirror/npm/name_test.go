package npm

import (
	"regexp"
	"testing"
)

// ValidName agrees with the regular expression it replaces.
func FuzzValidName(f *testing.F) {
	for _, s := range []string{"lodash", "@scope/name", "@a/b/c", "@/x", "_x", ".x", "~x", "A-b.c_d", "@s/", "a/b", ""} {
		f.Add(s)
	}
	re := regexp.MustCompile(`^(@[A-Za-z0-9~-][A-Za-z0-9._~-]*/)?[A-Za-z0-9~-][A-Za-z0-9._~-]*$`)
	f.Fuzz(func(t *testing.T, name string) {
		if got, want := ValidName(name), len(name) <= 214 && re.MatchString(name); got != want {
			t.Fatalf("ValidName(%q) = %v, want %v", name, got, want)
		}
	})
}
