package crypt_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/mirror-proxy/mirror-proxy/storage"
	"github.com/mirror-proxy/mirror-proxy/storage/crypt"
	"github.com/mirror-proxy/mirror-proxy/storage/local"
	"github.com/mirror-proxy/mirror-proxy/storage/storagetest"
)

func localKey(t *testing.T) *crypt.LocalKey {
	k := make([]byte, 32)
	rand.Read(k)
	lk, err := crypt.NewLocalKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return lk
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		s, err := local.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return crypt.New(s, localKey(t))
	})
}

var ctx = context.Background()

func read(t *testing.T, s storage.Store, key string, rng storage.Range) ([]byte, error) {
	t.Helper()
	rc, _, err := s.Get(ctx, key, rng)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// What is stored is not the plaintext; every range of every size reads
// back right; an altered or cut object is an error, never other bytes;
// an object written before encryption is read as it is.
func TestEncryptedObjects(t *testing.T) {
	dir := t.TempDir()
	plainStore, _ := local.New(dir)
	s := crypt.New(plainStore, localKey(t))
	for _, n := range []int{0, 1, 100, 64 << 10, 64<<10 + 1, 200_000} {
		data := make([]byte, n)
		rand.Read(data)
		key := "k/obj.bin"
		if err := s.Put(ctx, key, bytes.NewReader(data), storage.PutOptions{Size: int64(n)}); err != nil {
			t.Fatal(err)
		}
		raw, _ := os.ReadFile(filepath.Join(dir, "k", "obj.bin"))
		if n > 16 && bytes.Contains(raw, data[:16]) {
			t.Fatalf("%d bytes: plaintext in the stored object", n)
		}
		if st, err := s.Stat(ctx, key); err != nil || st.Size != int64(n) {
			t.Fatalf("%d bytes: Stat %+v %v", n, st, err)
		}
		for _, r := range []storage.Range{storage.Whole, {Offset: 0, Length: 1}, {Offset: int64(n / 2), Length: -1}, {Offset: int64(n / 3), Length: int64(n / 3)}, {Offset: int64(max(n-5, 0)), Length: 100}} {
			if n == 0 && r != storage.Whole {
				continue
			}
			got, err := read(t, s, key, r)
			end := int64(n)
			if r.Length >= 0 && r.Offset+r.Length < end {
				end = r.Offset + r.Length
			}
			if err != nil || !bytes.Equal(got, data[r.Offset:end]) {
				t.Fatalf("%d bytes, range %+v: %d bytes, %v", n, r, len(got), err)
			}
		}
		if n < 100 {
			continue
		}
		// Altered in the middle: the chunk fails.
		bad := bytes.Clone(raw)
		bad[512+(len(bad)-512)/2] ^= 1
		os.WriteFile(filepath.Join(dir, "k", "obj.bin"), bad, 0o644)
		if got, err := read(t, s, key, storage.Whole); !errors.Is(err, crypt.ErrAuth) {
			t.Fatalf("%d bytes altered: %d bytes, %v", n, len(got), err)
		}
		// Cut at a chunk boundary: the last chunk is missing.
		if n > 64<<10 {
			os.WriteFile(filepath.Join(dir, "k", "obj.bin"), raw[:512+(64<<10)+16], 0o644)
			if got, err := read(t, s, key, storage.Whole); err == nil && len(got) != n {
				t.Fatalf("%d bytes cut: %d bytes read without an error", n, len(got))
			}
		}
	}
	// Written before encryption: read as it is.
	plainStore.Put(ctx, "k/old.txt", bytes.NewReader([]byte("plaintext of old")), storage.PutOptions{Size: 16})
	if got, err := read(t, s, "k/old.txt", storage.Whole); err != nil || string(got) != "plaintext of old" {
		t.Fatalf("an old object: %q %v", got, err)
	}
	if got, err := read(t, s, "k/old.txt", storage.Range{Offset: 4, Length: 4}); err != nil || string(got) != "ntex" {
		t.Fatalf("a range of an old object: %q %v", got, err)
	}
	// Another key cannot read it.
	s.Put(ctx, "k/x", bytes.NewReader([]byte("secret")), storage.PutOptions{Size: 6})
	if _, err := read(t, crypt.New(plainStore, localKey(t)), "k/x", storage.Whole); err == nil {
		t.Fatal("another key read the object")
	}
}
