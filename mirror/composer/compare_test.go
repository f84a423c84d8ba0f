package composer

import "testing"

func TestCompareVersions(t *testing.T) {
	order := []string{"1.0.0-dev", "1.0.0-alpha1", "1.0.0-beta1", "1.0.0-beta2", "1.0.0-RC1", "1.0.0", "1.0.0-patch1", "1.0.1", "v1.2", "1.10.0", "2.0.0.1"}
	for i := 0; i+1 < len(order); i++ {
		if c, ok := CompareVersions(order[i], order[i+1]); !ok || c >= 0 {
			t.Errorf("%s vs %s: %d %v", order[i], order[i+1], c, ok)
		}
	}
	if c, ok := CompareVersions("1.2", "1.2.0.0"); !ok || c != 0 {
		t.Errorf("1.2 vs 1.2.0.0: %d %v", c, ok)
	}
	if _, ok := CompareVersions("dev-main", "1.0.0"); ok {
		t.Error("a branch compared")
	}
}
