package fetch

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
)

// ErrUnpackedTooLarge: an archive decompresses to more than unpackLimit
// allows for its size (a decompression bomb); nothing more is read.
var ErrUnpackedTooLarge = errors.New("the archive decompresses to more than its size allows (64 MiB plus 32 times its compressed size): refused as a decompression bomb")

// unpackLimit is how many bytes an archive of n compressed bytes may
// decompress to: 64 MiB plus 32 times n, far above real packages'
// ratios, far below a bomb's.
func unpackLimit(n int64) int64 { return 64<<20 + 32*max(n, 0) }

// Unpacked bounds a decompressing reader over an archive of n compressed
// bytes to unpackLimit(n): past it, reads fail with ErrUnpackedTooLarge.
// Decompression streams, so memory does not grow with it; the bound is
// on the work one request can cause.
func Unpacked(r io.Reader, n int64) io.Reader {
	return &unpacked{r: r, left: unpackLimit(n)}
}

type unpacked struct {
	r    io.Reader
	left int64
}

func (u *unpacked) Read(p []byte) (int, error) {
	if u.left <= 0 {
		return 0, ErrUnpackedTooLarge
	}
	if int64(len(p)) > u.left {
		p = p[:u.left]
	}
	n, err := u.r.Read(p)
	u.left -= int64(n)
	return n, err
}

// ArchiveCheck returns the structural check of a downloaded archive of
// the given dist type, for files the metadata gives no digest for (most
// of Packagist's dists): a zip must have a readable central directory and
// every entry must match its CRC-32; a tar (gzip-compressed or not) must
// read to its end, the gzip trailer's CRC and size included. This catches
// truncated and corrupted downloads, not a well-formed archive with other
// contents. Unknown types get no check (nil).
func ArchiveCheck(typ string) func(io.ReaderAt, int64) error {
	switch typ {
	case "zip":
		return checkZip
	case "tar":
		return func(r io.ReaderAt, n int64) error { return checkTar(io.NewSectionReader(r, 0, n)) }
	case "tgz", "tar.gz", "gzip":
		return func(r io.ReaderAt, n int64) error {
			zr, err := gzip.NewReader(io.NewSectionReader(r, 0, n))
			if err != nil {
				return err
			}
			return checkTar(Unpacked(zr, n))
		}
	}
	return nil
}

func checkZip(r io.ReaderAt, n int64) error {
	zr, err := zip.NewReader(r, n)
	if err != nil {
		return err
	}
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	left := unpackLimit(n) // summed over the entries
	for _, f := range zr.File {
		if f.FileInfo().IsDir() {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return fmt.Errorf("%s: %w", f.Name, err)
		}
		u := &unpacked{r: rc, left: left}
		_, err = io.CopyBuffer(io.Discard, u, *bp) // archive/zip checks the CRC at the end
		left = u.left
		rc.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", f.Name, err)
		}
	}
	return nil
}

func checkTar(r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		_, err := tr.Next()
		if errors.Is(err, io.EOF) {
			// Read what follows the end marker too, so that a gzip
			// stream's trailer is checked.
			_, err = io.Copy(io.Discard, r)
			return err
		}
		if err != nil {
			return err
		}
		if _, err := io.Copy(io.Discard, tr); err != nil {
			return err
		}
	}
}
