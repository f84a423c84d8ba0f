package pypi

import "testing"

func TestCanonicalVersion(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"1.0", "1"}, {"1.0.0", "1"}, {"V1.0", "1"}, {"1.0.0.0", "1"}, {"1.10", "1.10"}, {"01.02", "1.2"},
		{"1.0a1", "1a1"}, {"1.0.alpha.1", "1a1"}, {"1.0-rc1", "1rc1"}, {"1.0c1", "1rc1"}, {"1.0-preview", "1rc0"},
		{"1.0-1", "1.post1"}, {"1.0.post", "1.post0"}, {"1.0rev2", "1.post2"}, {"1.0.dev", "1.dev0"},
		{"1!2.0", "1!2"}, {"0!2.0", "2"}, {"1.0+Ubuntu-1", "1+ubuntu.1"}, {"not a version", "not a version"},
	} {
		if got := CanonicalVersion(c.in); got != c.want {
			t.Errorf("CanonicalVersion(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// What PyPI refuses in a release, however its names are spelled; the same
// file again is a retry.
func TestHostedIndexClash(t *testing.T) {
	x := &HostedIndex{Name: "mypkg", Files: []HostedFile{
		{Filename: "mypkg-1.0.tar.gz", SHA256: "aa"},
		{Filename: "mypkg-1.0-py3-none-any.whl", SHA256: "bb"},
	}}
	for _, c := range []struct {
		file, sum string
		same, bad bool
	}{
		{"mypkg-1.0.tar.gz", "aa", true, false},
		{"mypkg-1.0.tar.gz", "cc", false, true},
		{"MyPkg-1.0.tar.gz", "cc", false, true},
		{"mypkg-1.0.0.tar.gz", "cc", false, true},
		{"mypkg-1.0.0.zip", "cc", false, true},
		{"mypkg-1.0.0-py3-none-any.whl", "cc", false, true},
		{"MyPkg-1.0-PY3-none-any.whl", "cc", false, true},
		{"mypkg-1.0-cp312-cp312-manylinux_2_17_x86_64.whl", "cc", false, false},
		{"mypkg-1.0.1.tar.gz", "cc", false, false},
	} {
		df, err := ParseDistFilename(c.file)
		if err != nil {
			t.Fatal(err)
		}
		same, err := x.Clash(HostedFile{Filename: c.file, SHA256: c.sum}, df)
		if same != c.same || (err != nil) != c.bad {
			t.Errorf("%s (%s): same %v, err %v; want same %v, refused %v", c.file, c.sum, same, err, c.same, c.bad)
		}
	}
}

func TestComparePEP440(t *testing.T) {
	order := []string{"1.0.dev1", "1.0a1.dev1", "1.0a1", "1.0a2", "1.0b1", "1.0rc1", "1.0", "1.0+local", "1.0.post1.dev1", "1.0.post1", "1.0.1", "1.1", "2.0", "1!0.1"}
	for i := 0; i+1 < len(order); i++ {
		if c, ok := ComparePEP440(order[i], order[i+1]); !ok || c >= 0 {
			t.Errorf("%s vs %s: %d %v", order[i], order[i+1], c, ok)
		}
	}
	if c, ok := ComparePEP440("1.0", "1.0.0"); !ok || c != 0 {
		t.Errorf("1.0 vs 1.0.0: %d", c)
	}
	if _, ok := ComparePEP440("not a version", "1.0"); ok {
		t.Error("an invalid version compared")
	}
}
