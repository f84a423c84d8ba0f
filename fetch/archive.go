package fetch

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
)

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
			return checkTar(zr)
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
	for _, f := range zr.File {
		if f.FileInfo().IsDir() {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return fmt.Errorf("%s: %w", f.Name, err)
		}
		_, err = io.CopyBuffer(io.Discard, rc, *bp) // archive/zip checks the CRC at the end
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
