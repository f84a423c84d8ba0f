package fetch

import (
	"crypto/sha512"
	"encoding/base64"
	"testing"
)

func TestDigests(t *testing.T) {
	if _, err := HexDigest("sha1", "abc"); err == nil {
		t.Error("a short sha1 was taken")
	}
	d, err := HexDigest("sha256", "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855")
	if err != nil || d.String() != "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Errorf("HexDigest: %v %v", d, err)
	}
	sum := sha512.Sum512([]byte("x"))
	sri := "sha1-" + base64.StdEncoding.EncodeToString(make([]byte, 20)) + " sha512-" + base64.StdEncoding.EncodeToString(sum[:])
	d, err = SRIDigest(sri)
	if err != nil || d.Alg != "sha512" || !d.matches(sum[:]) {
		t.Errorf("SRIDigest took %v, %v; want the sha512", d, err)
	}
	for _, bad := range []string{"", "sha512-!!", "md4-AAAA", "sha512-" + base64.StdEncoding.EncodeToString([]byte("short"))} {
		if _, err := SRIDigest(bad); err == nil {
			t.Errorf("SRIDigest(%q) took it", bad)
		}
	}
}
