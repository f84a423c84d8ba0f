package fetch

import (
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"strings"

	"github.com/mirror-proxy/mirror-proxy/httpx"
)

// Digest is a digest a file must have, as an ecosystem's metadata gives
// it: an algorithm and its value.
type Digest struct {
	Alg   string // "md5", "sha1", "sha256" or "sha512"
	Value []byte
}

var digestSizes = map[string]int{"md5": md5.Size, "sha1": sha1.Size, "sha256": sha256.Size, "sha512": sha512.Size}

// HexDigest reads a hex digest (Composer's shasum, PyPI's sha256).
func HexDigest(alg, h string) (Digest, error) {
	b, err := hex.DecodeString(strings.ToLower(h))
	if err != nil || len(b) != digestSizes[alg] {
		return Digest{}, fmt.Errorf("%q is not a %s hex digest", httpx.Truncate(h, 140), alg)
	}
	return Digest{Alg: alg, Value: b}, nil
}

// SRIDigest reads a Subresource Integrity value ("sha512-<base64>", npm's
// dist.integrity); of several, the strongest is taken.
func SRIDigest(sri string) (Digest, error) {
	var best Digest
	for _, f := range strings.Fields(sri) {
		alg, b64, ok := strings.Cut(f, "-")
		if !ok {
			continue
		}
		b, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || digestSizes[alg] == 0 || len(b) != digestSizes[alg] {
			continue
		}
		if digestSizes[alg] > digestSizes[best.Alg] {
			best = Digest{Alg: alg, Value: b}
		}
	}
	if best.Alg == "" {
		return Digest{}, fmt.Errorf("%q is not an integrity value (sha512-<base64>)", httpx.Truncate(sri, 140))
	}
	return best, nil
}

// String is "alg:hex".
func (d Digest) String() string { return d.Alg + ":" + hex.EncodeToString(d.Value) }

func (d Digest) hash() hash.Hash {
	switch d.Alg {
	case "md5":
		return md5.New()
	case "sha1":
		return sha1.New()
	case "sha512":
		return sha512.New()
	}
	return sha256.New()
}

// matches reports whether a computed sum is the digest.
func (d Digest) matches(sum []byte) bool { return bytes.Equal(sum, d.Value) }
