package fetch

import (
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"

	"github.com/mirror-proxy/mirror-proxy/hosted"
	"github.com/mirror-proxy/mirror-proxy/storage"
)

// Reads from storage are checked too: a file stored with the digest its
// metadata gave (storage.PutOptions.Digest) is verified while a whole read
// streams it, and its last byte is held back until the digest matches, so
// that an object altered or truncated in the bucket is an aborted
// transfer, never a clean 200 with wrong bytes. A mirrored file that fails
// is dropped from storage (the next request fetches it again from its
// upstream, verified); a published one is kept and reported, as it has no
// other copy.

// errCorruptStored: a stored object's bytes do not match its recorded
// digest.
var errCorruptStored = errors.New("the stored object does not match its recorded digest")

// storedDigest reads a recorded digest ("alg:hex"); ok is false for none
// or one this proxy cannot check.
func storedDigest(s string) (Digest, bool) {
	alg, h, found := strings.Cut(s, ":")
	if !found {
		return Digest{}, false
	}
	d, err := HexDigest(alg, h)
	return d, err == nil
}

// strongest is the digest of ds to record with a stored file ("" : none).
func strongest(ds []Digest) string {
	var best Digest
	for _, d := range ds {
		if digestSizes[d.Alg] > digestSizes[best.Alg] {
			best = d
		}
	}
	if best.Alg == "" {
		return ""
	}
	return best.String()
}

// verifying reads an object of size bytes, hashing it, and holds its last
// byte back until the whole object was read and matches want. It serves
// reads of any size (net/http asks for a single byte at times).
type verifying struct {
	r       io.Reader
	h       hash.Hash
	want    Digest
	left    int64  // bytes not yet read from r
	buf     []byte // read from r
	obuf    []byte // the held byte, then what was read
	out     []byte // ready to be returned
	pending byte   // the byte held back, when held
	held    bool
	done    bool // verified: out is the rest
}

func newVerifying(r io.Reader, want Digest, size int64) *verifying {
	return &verifying{r: r, h: want.hash(), want: want, left: size}
}

func (v *verifying) Read(p []byte) (int, error) {
	for len(v.out) == 0 {
		if v.done {
			return 0, io.EOF
		}
		if err := v.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, v.out)
	v.out = v.out[n:]
	return n, nil
}

// fill reads the next bytes from r into out, holding the last one back
// unless the object is complete and verified. out is drained before the
// next fill, which reuses its buffer.
func (v *verifying) fill() error {
	if v.buf == nil {
		v.buf = make([]byte, 32<<10)
		v.obuf = make([]byte, 0, len(v.buf)+1)
	}
	n, err := v.r.Read(v.buf)
	v.h.Write(v.buf[:n])
	v.left -= int64(n)
	v.obuf = v.obuf[:0]
	if v.held {
		v.obuf = append(v.obuf, v.pending)
	}
	v.obuf = append(v.obuf, v.buf[:n]...)
	if err == io.EOF || (err == nil && v.left == 0) {
		if v.left != 0 || !v.want.matches(v.h.Sum(nil)) {
			return fmt.Errorf("%w (%s)", errCorruptStored, v.want)
		}
		v.out, v.done = v.obuf, true
		return nil
	}
	if err != nil {
		return err
	}
	v.held = len(v.obuf) > 0
	if v.held { // hold the last byte back
		v.pending = v.obuf[len(v.obuf)-1]
		v.out = v.obuf[:len(v.obuf)-1]
	}
	return nil
}

// verifiedRead wraps a whole read of a stored object with its recorded
// digest, when there is one it can check.
func verifiedRead(rc io.ReadCloser, info storage.Info) io.ReadCloser {
	d, ok := storedDigest(info.Digest)
	if !ok {
		return rc
	}
	return struct {
		io.Reader
		io.Closer
	}{newVerifying(rc, d, info.Size), rc}
}

// corruptStored handles an object whose bytes failed their recorded
// digest: a mirrored file is dropped (fetched again next time), a
// published one reported.
func (c *Core) corruptStored(key string, err error) {
	c.metrics.corruptReads.Inc()
	published := false
	c.eachRepo(func(r *hosted.Repo) {
		published = published || strings.HasPrefix(key, r.Key("")+"/")
	})
	if published {
		c.log.Error("a published file in storage does not match its digest: restore it from a backup", "key", key, "err", err)
		return
	}
	c.log.Error("a stored file does not match its digest; dropped, it will be fetched again", "key", key, "err", err)
	c.DropFile(c.bg, key)
}
