package nix

import (
	"compress/bzip2"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/dsnet/compress/brotli"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// A narinfo's NarHash and NarSize are those of the NAR decompressed; its
// FileHash only those of the compressed file. An upstream narinfo whose
// URL and FileHash name another store path's NAR passes the FileHash
// check and fails in nix ("hash mismatch importing path"), so the proxy
// checks the decompressed NAR too before it stores it, and drops a
// narinfo whose NAR does not verify.

// narHash reads a NarHash ("sha256:<nix base32>", or 64 hex digits).
func narHash(v string) ([]byte, error) {
	h, ok := strings.CutPrefix(v, "sha256:")
	if !ok {
		return nil, fmt.Errorf("NarHash %q is not sha256", truncate(v, 80))
	}
	if len(h) == 64 {
		return hex.DecodeString(h)
	}
	return DecodeBase32(h, 32)
}

// NarFile is the NAR file name a narinfo's URL gives ("<file hash>.nar.xz",
// from nar/<file> or, as the proxy rewrites it, nar/<hash>/<file>).
func (n NarInfo) NarFile() string { return n.URL[strings.LastIndexByte(n.URL, '/')+1:] }

// VerifiedKey is the storage path (under the mirror's dist prefix) of a NAR
// verified against n: the NarHash is part of it, so a NAR stored for one
// narinfo is never taken for another that names the same file with
// another NarHash.
func (n NarInfo) VerifiedKey() string {
	return "nar/" + EncodeBase32(n.NarHash) + "/" + n.NarFile()
}

// errNarMismatch: the decompressed NAR is not the one the narinfo names.
var errNarMismatch = errors.New("the NAR does not match its narinfo's NarHash or NarSize")

// decompressor opens the decompressed stream of a NAR file by its
// extension; nil for a compression the proxy cannot read (then only the
// FileHash is checked).
func decompressor(file string, r io.Reader) (io.Reader, func(), error) {
	none := func() {}
	switch {
	case strings.HasSuffix(file, ".nar"):
		return r, none, nil
	case strings.HasSuffix(file, ".nar.xz"):
		xr, err := xz.NewReader(r)
		return xr, none, err
	case strings.HasSuffix(file, ".nar.zst"):
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(256<<20))
		if err != nil {
			return nil, none, err
		}
		return zr, zr.Close, nil
	case strings.HasSuffix(file, ".nar.bz2"):
		return bzip2.NewReader(r), none, nil
	case strings.HasSuffix(file, ".nar.gz"):
		zr, err := gzip.NewReader(r)
		return zr, none, err
	case strings.HasSuffix(file, ".nar.br"):
		br, err := brotli.NewReader(r, nil)
		if err != nil {
			return nil, none, err
		}
		return br, func() { br.Close() }, nil
	}
	return nil, none, nil
}

// CheckNar verifies that the NAR file (compressed as its name says)
// decompresses to exactly NarSize bytes whose sha256 is NarHash; nothing
// past NarSize is decompressed.
func (n NarInfo) CheckNar(r io.ReaderAt, size int64) error {
	dr, done, err := decompressor(n.NarFile(), io.NewSectionReader(r, 0, size))
	if err != nil {
		return fmt.Errorf("%w: %v", errNarMismatch, err)
	}
	defer done()
	if dr == nil {
		return nil // lz4, lzip: the FileHash was checked
	}
	h := sha256.New()
	got, err := io.Copy(h, io.LimitReader(dr, n.NarSize+1))
	if err != nil {
		return fmt.Errorf("%w: decompressing: %v", errNarMismatch, err)
	}
	if got != n.NarSize || string(h.Sum(nil)) != string(n.NarHash) {
		return fmt.Errorf("%w (%d bytes, sha256:%s; the narinfo says %d bytes, sha256:%s)", errNarMismatch,
			got, EncodeBase32(h.Sum(nil)), n.NarSize, EncodeBase32(n.NarHash))
	}
	return nil
}

func parseNarSize(v string) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("NarSize %q is not a size", truncate(v, 40))
	}
	return n, nil
}
