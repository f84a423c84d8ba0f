// Package crypt encrypts every object a storage.Store keeps (client-side
// encryption, STORAGE_ENCRYPTION), so that whoever holds the bucket cannot
// read it. Each object gets its own random 256-bit data key, kept wrapped
// (by KMS, or by a local key) in the object's header, and its bytes are
// AES-256-GCM in authenticated chunks of 64 KiB: a range reads and
// decrypts only the chunks it needs, and a chunk that was altered,
// reordered, moved to another key or cut off (the last chunk is marked)
// fails authentication, which a read reports as an error, never as other
// bytes. Objects written before encryption was switched on are read as
// they are (a bucket may be mixed while it is re-encrypted).
//
// The layout of an encrypted object:
//
//	header (512 bytes): "MPXE", version 1, the key kind, the wrapped data
//	  key's length (2 bytes, big endian) and the wrapped key, zero-padded
//	chunks: each 64 KiB of plaintext (the last one shorter, or empty for
//	  an empty object) sealed with its own nonce (the chunk's index and
//	  whether it is the last) and additional data (the object's key, the
//	  index and the last-chunk flag), so each is 16 bytes longer.
package crypt

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/mirror-proxy/mirror-proxy/storage"
)

// Keys makes and opens objects' data keys.
type Keys interface {
	// New returns a fresh 32-byte data key and its wrapped form.
	New(ctx context.Context) (key, wrapped []byte, err error)
	// Open unwraps a data key made by New.
	Open(ctx context.Context, wrapped []byte) ([]byte, error)
	// Kind is the kind of wrapping, recorded in each object's header.
	Kind() byte
}

const (
	headerSize = 512
	chunkSize  = 64 << 10
	sealedSize = chunkSize + 16
	version    = 1
)

var magic = []byte("MPXE")

// ErrAuth: an encrypted object failed authentication (altered, truncated,
// or not this key's).
var ErrAuth = errors.New("encrypted object failed authentication")

// Store is a storage.Store whose objects are encrypted.
type Store struct {
	storage.Store
	keys Keys
}

var _ storage.Store = (*Store)(nil)

// New encrypts what is written to s with data keys from keys.
func New(s storage.Store, keys Keys) *Store { return &Store{Store: s, keys: keys} }

// sealedLen is the stored size of an object of n plaintext bytes.
func sealedLen(n int64) int64 {
	chunks := (n + chunkSize - 1) / chunkSize
	if chunks == 0 {
		chunks = 1 // an empty object is one empty chunk
	}
	return headerSize + n + 16*chunks
}

// plainLen is the plaintext size of an encrypted object of stored size c.
func plainLen(c int64) (int64, error) {
	c -= headerSize
	full, rem := c/sealedSize, c%sealedSize
	switch {
	case c < 16:
		return 0, ErrAuth
	case rem == 0:
		return full * chunkSize, nil
	case rem < 16:
		return 0, ErrAuth
	}
	return full*chunkSize + rem - 16, nil
}

func nonce(i int64, last bool) []byte {
	n := make([]byte, 12)
	binary.BigEndian.PutUint64(n, uint64(i))
	if last {
		n[11] = 1
	}
	return n
}

func aad(key string, i int64, last bool) []byte {
	b := make([]byte, 0, len(key)+9)
	b = append(b, key...)
	b = binary.BigEndian.AppendUint64(b, uint64(i))
	if last {
		return append(b, 1)
	}
	return append(b, 0)
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func (s *Store) Put(ctx context.Context, key string, r io.Reader, opts storage.PutOptions) error {
	dk, wrapped, err := s.keys.New(ctx)
	if err != nil {
		return fmt.Errorf("encryption: a data key for %s: %w", key, err)
	}
	if len(wrapped) > headerSize-len(magic)-4 {
		return fmt.Errorf("encryption: wrapped data key of %d bytes is too long", len(wrapped))
	}
	aead, err := newGCM(dk)
	if err != nil {
		return err
	}
	hdr := make([]byte, headerSize)
	copy(hdr, magic)
	hdr[4], hdr[5] = version, s.keys.Kind()
	binary.BigEndian.PutUint16(hdr[6:], uint16(len(wrapped)))
	copy(hdr[8:], wrapped)
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(seal(pw, r, hdr, aead, key)) }()
	defer pr.Close()
	if opts.Size >= 0 {
		opts.Size = sealedLen(opts.Size)
	}
	return s.Store.Put(ctx, key, pr, opts)
}

// seal writes the header, then r in sealed chunks; the last chunk is the
// one after which r has nothing more.
func seal(w io.Writer, r io.Reader, hdr []byte, aead cipher.AEAD, key string) error {
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	cur, nxt := make([]byte, chunkSize), make([]byte, chunkSize)
	n, err := io.ReadFull(r, cur)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return err
	}
	out := make([]byte, 0, sealedSize)
	for i := int64(0); ; i++ {
		m := 0
		var nerr error = io.EOF
		if n == chunkSize {
			m, nerr = io.ReadFull(r, nxt)
			if nerr != nil && nerr != io.EOF && nerr != io.ErrUnexpectedEOF {
				return nerr
			}
		}
		last := m == 0 && (nerr == io.EOF || nerr == io.ErrUnexpectedEOF)
		out = aead.Seal(out[:0], nonce(i, last), cur[:n], aad(key, i, last))
		if _, err := w.Write(out); err != nil {
			return err
		}
		if last {
			return nil
		}
		cur, nxt, n = nxt, cur, m
	}
}

// Encrypted reports whether an object whose first bytes are hdr (up to
// 512) is encrypted.
func Encrypted(hdr []byte) bool {
	return len(hdr) >= len(magic) && bytes.Equal(hdr[:len(magic)], magic)
}

// HeaderSize is how many first bytes of an object Encrypted needs.
const HeaderSize = headerSize

// header reads an object's header; plain is true when the object is not
// encrypted (written before encryption was switched on).
func (s *Store) open(ctx context.Context, hdr []byte) (aead cipher.AEAD, plain bool, err error) {
	if len(hdr) < headerSize || !bytes.Equal(hdr[:4], magic) {
		return nil, true, nil
	}
	if hdr[4] != version {
		return nil, false, fmt.Errorf("encryption: header version %d unknown", hdr[4])
	}
	if hdr[5] != s.keys.Kind() {
		return nil, false, fmt.Errorf("encryption: the object's data key is wrapped by another kind of key (%d) than STORAGE_ENCRYPTION's", hdr[5])
	}
	n := int(binary.BigEndian.Uint16(hdr[6:]))
	if 8+n > headerSize {
		return nil, false, ErrAuth
	}
	dk, err := s.keys.Open(ctx, hdr[8:8+n])
	if err != nil {
		return nil, false, fmt.Errorf("encryption: unwrapping the data key: %w", err)
	}
	aead, err = newGCM(dk)
	return aead, false, err
}

// readHeader reads the first headerSize bytes of key, and its Info.
func (s *Store) readHeader(ctx context.Context, key string) ([]byte, storage.Info, error) {
	rc, info, err := s.Store.Get(ctx, key, storage.Range{Offset: 0, Length: headerSize})
	if errors.Is(err, storage.ErrInvalidRange) { // an empty object
		info, err = s.Store.Stat(ctx, key)
		return nil, info, err
	}
	if err != nil {
		return nil, info, err
	}
	defer rc.Close()
	hdr, err := io.ReadAll(io.LimitReader(rc, headerSize))
	return hdr, info, err
}

func (s *Store) Stat(ctx context.Context, key string) (storage.Info, error) {
	hdr, info, err := s.readHeader(ctx, key)
	if err != nil {
		return info, err
	}
	if len(hdr) < headerSize || !bytes.Equal(hdr[:4], magic) {
		return info, nil
	}
	if info.Size, err = plainLen(info.Size); err != nil {
		return info, fmt.Errorf("encryption: %s: %w", key, err)
	}
	return info, nil
}

func (s *Store) Get(ctx context.Context, key string, rng storage.Range) (io.ReadCloser, storage.Info, error) {
	if rng.Offset == 0 && rng.Length < 0 {
		return s.getWhole(ctx, key)
	}
	hdr, info, err := s.readHeader(ctx, key)
	if err != nil {
		return nil, info, err
	}
	aead, plain, err := s.open(ctx, hdr)
	if err != nil {
		return nil, info, err
	}
	if plain {
		return s.Store.Get(ctx, key, rng)
	}
	if info.Size, err = plainLen(info.Size); err != nil {
		return nil, info, fmt.Errorf("encryption: %s: %w", key, err)
	}
	size := info.Size
	if rng.Offset < 0 || rng.Offset >= size && !(rng.Offset == 0 && size == 0) {
		return nil, info, fmt.Errorf("encryption: %s offset %d of %d: %w", key, rng.Offset, size, storage.ErrInvalidRange)
	}
	end := size
	if rng.Length >= 0 && rng.Offset+rng.Length < end {
		end = rng.Offset + rng.Length
	}
	if end <= rng.Offset {
		return io.NopCloser(bytes.NewReader(nil)), info, nil
	}
	first, last := rng.Offset/chunkSize, (end-1)/chunkSize
	chunks := max((size+chunkSize-1)/chunkSize, 1)
	from := headerSize + first*sealedSize
	length := min((last+1)*sealedSize, sealedLen(size)-headerSize) - first*sealedSize
	rc, _, err := s.Store.Get(ctx, key, storage.Range{Offset: from, Length: length})
	if err != nil {
		return nil, info, err
	}
	d := &opener{r: rc, aead: aead, key: key, i: first, chunks: chunks, skip: rng.Offset - first*chunkSize, left: end - rng.Offset}
	return struct {
		io.Reader
		io.Closer
	}{d, rc}, info, nil
}

func (s *Store) getWhole(ctx context.Context, key string) (io.ReadCloser, storage.Info, error) {
	rc, info, err := s.Store.Get(ctx, key, storage.Whole)
	if err != nil {
		return nil, info, err
	}
	hdr := make([]byte, headerSize)
	n, err := io.ReadFull(rc, hdr)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		rc.Close()
		return nil, info, err
	}
	aead, plain, err := s.open(ctx, hdr[:n])
	if err != nil {
		rc.Close()
		return nil, info, err
	}
	if plain {
		return struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(hdr[:n]), rc), rc}, info, nil
	}
	stored := info.Size
	if info.Size, err = plainLen(stored); err != nil {
		rc.Close()
		return nil, info, fmt.Errorf("encryption: %s: %w", key, err)
	}
	chunks := max((info.Size+chunkSize-1)/chunkSize, 1)
	return struct {
		io.Reader
		io.Closer
	}{&opener{r: rc, aead: aead, key: key, chunks: chunks, left: info.Size}, rc}, info, nil
}

// opener decrypts chunks from r, starting at chunk i, dropping skip bytes
// of plaintext and stopping after left.
type opener struct {
	r      io.Reader
	aead   cipher.AEAD
	key    string
	i      int64 // the next chunk's index
	chunks int64 // the object's number of chunks
	skip   int64
	left   int64
	buf    []byte // sealed input
	out    []byte // plaintext not yet returned
	err    error
}

func (o *opener) Read(p []byte) (int, error) {
	for len(o.out) == 0 {
		if o.err != nil {
			return 0, o.err
		}
		if o.left <= 0 {
			return 0, io.EOF
		}
		if o.buf == nil {
			o.buf = make([]byte, sealedSize)
		}
		n, err := io.ReadFull(o.r, o.buf)
		if err == io.EOF || (err == io.ErrUnexpectedEOF && n < 16) {
			o.err = fmt.Errorf("encryption: %s: cut short: %w", o.key, ErrAuth)
			continue
		}
		if err != nil && err != io.ErrUnexpectedEOF {
			o.err = err
			continue
		}
		last := o.i == o.chunks-1
		plain, aerr := o.aead.Open(o.buf[:0:0], nonce(o.i, last), o.buf[:n], aad(o.key, o.i, last))
		if aerr != nil {
			o.err = fmt.Errorf("encryption: %s chunk %d: %w", o.key, o.i, ErrAuth)
			continue
		}
		o.i++
		if o.skip > 0 {
			k := min(o.skip, int64(len(plain)))
			plain, o.skip = plain[k:], o.skip-k
		}
		if int64(len(plain)) > o.left {
			plain = plain[:o.left]
		}
		o.left -= int64(len(plain))
		o.out = plain
	}
	n := copy(p, o.out)
	o.out = o.out[n:]
	return n, nil
}
