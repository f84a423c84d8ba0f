package fetch

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// A verified read gives the bytes whatever the sizes asked (one byte at a
// time included) and holds the last byte back from a mismatch.
func TestVerifyingRead(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 10_000)
	sum := sha256.Sum256(data)
	d := Digest{Alg: "sha256", Value: sum[:]}
	for _, r := range []func() io.Reader{
		func() io.Reader { return bytes.NewReader(data) },
		func() io.Reader { return iotest.OneByteReader(bytes.NewReader(data)) },
		func() io.Reader { return iotest.DataErrReader(bytes.NewReader(data)) },
	} {
		got, err := io.ReadAll(iotest.OneByteReader(newVerifying(r(), d, int64(len(data)))))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("one byte at a time: %d bytes, %v", len(got), err)
		}
		got, err = io.ReadAll(newVerifying(r(), d, int64(len(data))))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("whole: %d bytes, %v", len(got), err)
		}
	}
	bad := bytes.Clone(data)
	bad[500] ^= 1
	got, err := io.ReadAll(iotest.OneByteReader(newVerifying(bytes.NewReader(bad), d, int64(len(bad)))))
	if !errors.Is(err, errCorruptStored) || len(got) >= len(bad) {
		t.Fatalf("altered: %d of %d bytes, %v", len(got), len(bad), err)
	}
}
