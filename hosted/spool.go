package hosted

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrTooLarge: an upload is larger than UPLOAD_MAX_BYTES.
var ErrTooLarge = errors.New("upload larger than the configured limit")

// Spooled is an uploaded file held in a temporary file (never in memory)
// while it is checked, with its digests.
type Spooled struct {
	*os.File
	Size   int64
	SHA1   string
	SHA256 string
	MD5    string
}

// Spool copies r into a temporary file in dir ("" for the system's),
// hashing as it goes; more than max bytes is ErrTooLarge. The caller
// closes the result with Remove.
func Spool(r io.Reader, dir string, max int64) (*Spooled, error) {
	f, err := os.CreateTemp(dir, "upload-*")
	if err != nil {
		return nil, fmt.Errorf("spooling the upload: %w", err)
	}
	_ = os.Remove(f.Name()) // unnamed: nothing is left behind, whatever happens
	h1, h256, h5 := sha1.New(), sha256.New(), md5.New()
	n, err := io.Copy(io.MultiWriter(f, h1, h256, h5), io.LimitReader(r, max+1))
	if err == nil && n > max {
		err = ErrTooLarge
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Spooled{File: f, Size: n, SHA1: hex.EncodeToString(h1.Sum(nil)),
		SHA256: hex.EncodeToString(h256.Sum(nil)), MD5: hex.EncodeToString(h5.Sum(nil))}, nil
}

// Reader reads the spooled bytes from the start.
func (s *Spooled) Reader() io.Reader { return io.NewSectionReader(s.File, 0, s.Size) }

// Remove closes and discards the spool.
func (s *Spooled) Remove() { s.File.Close() }
