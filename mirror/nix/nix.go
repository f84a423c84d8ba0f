// Package nix mirrors Nix binary caches (cache.nixos.org and any HTTP
// binary cache): nix-cache-info, <hash>.narinfo (a found one never
// changes; a missing one may appear later, so 404s are remembered for
// NOT_FOUND_TTL only), NARs verified against their file hash before they
// are stored, and .ls and log/ files passed through. Narinfos are served
// byte for byte: their signed fields are never altered, and their URL
// stays relative so that the client fetches the NAR through the proxy.
// A hosted cache accepts what `nix copy --to http://...` uploads (PUT).
package nix

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// base32Chars is Nix's base32 alphabet (no e, o, u, t).
const base32Chars = "0123456789abcdfghijklmnpqrsvwxyz"

// DecodeBase32 reads a hash in Nix's base32 (which writes the bits from
// the last byte first).
func DecodeBase32(s string, size int) ([]byte, error) {
	if len(s) != (size*8+4)/5 {
		return nil, fmt.Errorf("%q is not a %d-byte Nix base32 hash", truncate(s, 80), size)
	}
	out := make([]byte, size)
	for n := 0; n < len(s); n++ {
		c := s[len(s)-n-1]
		digit := strings.IndexByte(base32Chars, c)
		if digit < 0 {
			return nil, fmt.Errorf("%q is not Nix base32", truncate(s, 80))
		}
		b := n * 5
		i, j := b/8, uint(b%8)
		out[i] |= byte(digit << j)
		if carry := digit >> (8 - j); i+1 < size {
			out[i+1] |= byte(carry)
		} else if carry != 0 {
			return nil, fmt.Errorf("%q is not Nix base32 (overflow)", truncate(s, 80))
		}
	}
	return out, nil
}

// NarInfo is what the proxy reads of a narinfo.
type NarInfo struct {
	StorePath, URL, FileHash string
	// NarHash (sha256) and NarSize are the decompressed NAR's; nil and 0
	// when the narinfo gives none (ParseNarInfo accepts that; an upstream
	// narinfo without them is refused by the mirror).
	NarHash []byte
	NarSize int64
}

var storePathRe = regexp.MustCompile(`^/[^\s]+/([0-9a-df-np-sv-z]{32})-[A-Za-z0-9+\-._?=]+$`)

// ParseNarInfo reads a narinfo and checks that it is for hash and that
// its URL is a NAR of this cache.
func ParseNarInfo(b []byte, hash string) (NarInfo, error) {
	var n NarInfo
	if bytes.HasPrefix(bytes.TrimSpace(b), []byte("<")) {
		return n, errors.New("narinfo is HTML")
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		switch k {
		case "StorePath":
			n.StorePath = v
		case "URL":
			n.URL = v
		case "FileHash":
			n.FileHash = v
		case "NarHash":
			h, err := narHash(v)
			if err != nil {
				return n, fmt.Errorf("narinfo: %v", err)
			}
			n.NarHash = h
		case "NarSize":
			s, err := parseNarSize(v)
			if err != nil {
				return n, fmt.Errorf("narinfo: %v", err)
			}
			n.NarSize = s
		}
	}
	m := storePathRe.FindStringSubmatch(n.StorePath)
	if m == nil {
		return n, fmt.Errorf("narinfo: %q is not a store path", truncate(n.StorePath, 120))
	}
	if m[1] != hash {
		return n, fmt.Errorf("narinfo for %s names the store path %s", hash, n.StorePath)
	}
	if n.URL == "" {
		return n, errors.New("narinfo without URL")
	}
	return n, nil
}

var (
	hashRe = regexp.MustCompile(`^[0-9a-df-np-sv-z]{32}$`)
	// narRe is a NAR file name: <file hash>.nar[.<compression>].
	narRe = regexp.MustCompile(`^([0-9a-df-np-sv-z]{52})\.nar(\.(xz|bz2|zst|br|gz|lz4|lzip))?$`)
	// logRe is a build log's name (a derivation's base name).
	logRe = regexp.MustCompile(`^[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+\-._?=]{1,200}$`)
)

// ValidHash reports whether s is a store path hash.
func ValidHash(s string) bool { return hashRe.MatchString(s) }

// NarFileHash is the sha256 a NAR's name gives (Nix names NARs by the
// hash of their file), or nil when the name is not of that form.
func NarFileHash(file string) []byte {
	m := narRe.FindStringSubmatch(file)
	if m == nil {
		return nil
	}
	b, err := DecodeBase32(m[1], 32)
	if err != nil {
		return nil
	}
	return b
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// EncodeBase32 writes a hash in Nix's base32.
func EncodeBase32(b []byte) string {
	n := (len(b)*8 + 4) / 5
	out := make([]byte, n)
	for i := 0; i < n; i++ {
		bit := (n - 1 - i) * 5
		j, k := bit/8, uint(bit%8)
		c := int(b[j]) >> k
		if j+1 < len(b) {
			c |= int(b[j+1]) << (8 - k)
		}
		out[i] = base32Chars[c&0x1f]
	}
	return string(out)
}
