package maven

import "testing"

func TestParseDeny(t *testing.T) {
	if d, err := ParseDeny("com.evil:lib"); err != nil || d.Name != "com.evil:lib" || d.Version != "" {
		t.Errorf("group:artifact: %+v %v", d, err)
	}
	if d, err := ParseDeny("org.example:util:1.2.3"); err != nil || d.Name != "org.example:util" || d.Version != "1.2.3" {
		t.Errorf("group:artifact:version: %+v %v", d, err)
	}
	for _, bad := range []string{"lib", "a::1", "a:b:c:d", ""} {
		if _, err := ParseDeny(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
