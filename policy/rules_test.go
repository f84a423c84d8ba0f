package policy

import (
	"strings"
	"testing"
)

func TestRules(t *testing.T) {
	for in, want := range map[string]Deny{
		"evil-pkg": {"evil-pkg", ""}, "left-pad@1.3.0": {"left-pad", "1.3.0"}, "@scope/pkg@1.0.0": {"@scope/pkg", "1.0.0"},
		"@scope/pkg": {"@scope/pkg", ""}, "requests==2.99.0": {"requests", "2.99.0"}, "acme/lib:1.2.3": {"acme/lib", "1.2.3"},
	} {
		if got, err := ParseDeny(in); err != nil || got != want {
			t.Errorf("ParseDeny(%q) = %+v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "x==", "[", "pkg@"} {
		if _, err := ParseDeny(bad); err == nil {
			t.Errorf("ParseDeny(%q) took it", bad)
		}
	}
	r := Rules{Allow: []string{"acme/*", "symfony/*"}, Deny: []Deny{{"acme/evil", ""}, {"acme/lib", "1.2.3"}}}
	if r.Refuse("acme/lib") != "" || !strings.Contains(r.Refuse("other/pkg"), "not approved") || !strings.Contains(r.Refuse("acme/evil"), "denied") {
		t.Error("Refuse")
	}
	if !r.Filters("acme/lib") || r.Filters("acme/other") || r.DenyVersion("acme/lib", "1.2.3", "1.2.3.0") == "" || r.DenyVersion("acme/lib", "1.2.4") != "" {
		t.Error("versions")
	}
}
