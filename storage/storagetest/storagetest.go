// Package storagetest is the conformance suite every storage backend runs:
// one suite, every backend, so that the proxy can rely on the same
// semantics whether objects live in a directory or in S3.
package storagetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"testing"

	"github.com/mirror-proxy/mirror-proxy/storage"
)

// Run runs the suite. newStore returns the store under test; the suite keeps
// every key under a random prefix so that one store (one bucket) can serve
// all subtests.
func Run(t *testing.T, newStore func(t *testing.T) storage.Store) { RunWith(t, newStore, Options{}) }

// Options describe what a backend is known not to do.
type Options struct {
	// IfMatchNotAtomic, when set, says why the backend checks IfMatch but
	// not atomically (two racing conditional writes over one version may
	// both succeed): the race test is skipped with that reason, and
	// callers must serialise such writes by other means (a Redis lease).
	IfMatchNotAtomic string
}

// RunWith runs the suite with what the backend is known not to do.
func RunWith(t *testing.T, newStore func(t *testing.T) storage.Store, o Options) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s storage.Store, root string)
	}{
		{"NotFound", testNotFound},
		{"RoundTrip", testRoundTrip},
		{"EmptyObject", testEmpty},
		{"Overwrite", testOverwrite},
		{"CreateOnly", testCreateOnly},
		{"CreateOnlyRace", testCreateOnlyRace},
		{"FailedReaderCommitsNothing", testFailedReader},
		{"Range", testRange},
		{"LargeStreamUnknownLength", testLarge},
		{"ListIsolation", testList},
		{"Digest", testDigest},
		{"InvalidKeys", testInvalidKeys},
		{"Delete", testDelete},
		{"IfMatch", testIfMatch},
		{"IfMatchRace", testIfMatchRace},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "IfMatchRace" && o.IfMatchNotAtomic != "" {
				t.Skip(o.IfMatchNotAtomic)
			}
			s := newStore(t)
			var rnd [6]byte
			_, _ = rand.Read(rnd[:])
			tc.fn(t, s, "conformance/"+hex.EncodeToString(rnd[:]))
		})
	}
}

var ctx = context.Background()

func random(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func put(t *testing.T, s storage.Store, key string, data []byte) {
	t.Helper()
	if err := s.Put(ctx, key, bytes.NewReader(data), storage.PutOptions{Size: int64(len(data))}); err != nil {
		t.Fatalf("Put %s: %v", key, err)
	}
}

func get(t *testing.T, s storage.Store, key string, rng storage.Range) ([]byte, storage.Info) {
	t.Helper()
	rc, info, err := s.Get(ctx, key, rng)
	if err != nil {
		t.Fatalf("Get %s %+v: %v", key, rng, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return b, info
}

func wantNotFound(t *testing.T, op string, err error) {
	t.Helper()
	if !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("%s on a missing key: got %v, want ErrNotFound", op, err)
	}
}

func testNotFound(t *testing.T, s storage.Store, root string) {
	key := root + "/missing/file.zip"
	_, err := s.Stat(ctx, key)
	wantNotFound(t, "Stat", err)
	_, _, err = s.Get(ctx, key, storage.Whole)
	wantNotFound(t, "Get", err)
	_, _, err = s.Get(ctx, key, storage.Range{Offset: 3, Length: 2})
	wantNotFound(t, "Get range", err)
	wantNotFound(t, "Delete", s.Delete(ctx, key))
	// A key below an existing object is missing, not an error of another kind.
	put(t, s, root+"/file", []byte("x"))
	_, err = s.Stat(ctx, root+"/file/below")
	wantNotFound(t, "Stat below a file", err)
}

func testRoundTrip(t *testing.T, s storage.Store, root string) {
	data := append([]byte{0xff, 0xfe, 0x00, 0x80}, random(t, 100_000)...)
	key := root + "/a/b/c.zip"
	put(t, s, key, data)
	got, info := get(t, s, key, storage.Whole)
	if !bytes.Equal(got, data) {
		t.Fatalf("Get returned %d bytes that differ from the %d put", len(got), len(data))
	}
	if info.Size != int64(len(data)) || info.ModTime.IsZero() {
		t.Fatalf("Get Info = %+v, want size %d and a modification time (a whole read is served with them)", info, len(data))
	}
	st, err := s.Stat(ctx, key)
	if err != nil || st.Size != int64(len(data)) || st.ModTime.IsZero() {
		t.Fatalf("Stat = %+v, %v; want size %d and a modification time", st, err, len(data))
	}
}

// A digest written with an object comes back with it, from Stat and Get
// (reads are verified against it); an object written without one has none.
func testDigest(t *testing.T, s storage.Store, root string) {
	data := random(t, 1000)
	d := "sha256:" + fmt.Sprintf("%x", sha256.Sum256(data))
	key := root + "/with-digest.bin"
	if err := s.Put(ctx, key, bytes.NewReader(data), storage.PutOptions{Size: int64(len(data)), CreateOnly: true, Digest: d}); err != nil {
		t.Fatal(err)
	}
	if st, err := s.Stat(ctx, key); err != nil || st.Digest != d {
		t.Fatalf("Stat = %+v, %v; want digest %s", st, err, d)
	}
	if _, info := get(t, s, key, storage.Whole); info.Digest != d {
		t.Fatalf("Get Info.Digest = %q, want %s", info.Digest, d)
	}
	plain := root + "/without.bin"
	put(t, s, plain, data)
	if st, err := s.Stat(ctx, plain); err != nil || st.Digest != "" {
		t.Fatalf("an object written without a digest: %+v, %v", st, err)
	}
}

func testEmpty(t *testing.T, s storage.Store, root string) {
	key := root + "/empty"
	put(t, s, key, nil)
	got, info := get(t, s, key, storage.Whole)
	if len(got) != 0 || info.Size != 0 {
		t.Fatalf("empty object: got %d bytes, size %d", len(got), info.Size)
	}
}

func testOverwrite(t *testing.T, s storage.Store, root string) {
	key := root + "/meta.json"
	put(t, s, key, []byte("first version"))
	put(t, s, key, []byte("second"))
	if got, _ := get(t, s, key, storage.Whole); string(got) != "second" {
		t.Fatalf("after overwrite got %q", got)
	}
}

func testCreateOnly(t *testing.T, s storage.Store, root string) {
	key := root + "/dist.zip"
	if err := s.Put(ctx, key, bytes.NewReader([]byte("winner")), storage.PutOptions{Size: 6, CreateOnly: true}); err != nil {
		t.Fatalf("create-only Put of a new key: %v", err)
	}
	err := s.Put(ctx, key, bytes.NewReader([]byte("loser!")), storage.PutOptions{Size: 6, CreateOnly: true})
	if !errors.Is(err, storage.ErrExists) {
		t.Fatalf("second create-only Put: got %v, want ErrExists", err)
	}
	if got, _ := get(t, s, key, storage.Whole); string(got) != "winner" {
		t.Fatalf("create-only Put replaced the object: %q", got)
	}
	// The same for a body large enough to need a multipart upload.
	big := random(t, 6<<20)
	err = s.Put(ctx, key, io.MultiReader(bytes.NewReader(big)), storage.PutOptions{Size: -1, CreateOnly: true})
	if !errors.Is(err, storage.ErrExists) {
		t.Fatalf("large create-only Put over an existing key: got %v, want ErrExists", err)
	}
	if got, _ := get(t, s, key, storage.Whole); string(got) != "winner" {
		t.Fatalf("large create-only Put replaced the object (%d bytes)", len(got))
	}
}

func testCreateOnlyRace(t *testing.T, s storage.Store, root string) {
	key := root + "/race.zip"
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			body := bytes.Repeat([]byte{byte('a' + i)}, 1000)
			errs[i] = s.Put(ctx, key, bytes.NewReader(body), storage.PutOptions{Size: 1000, CreateOnly: true})
		})
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case errors.Is(err, storage.ErrExists):
		default:
			t.Fatalf("racing create-only Put: %v", err)
		}
	}
	if wins < 1 {
		t.Fatalf("no racing writer won")
	}
	got, _ := get(t, s, key, storage.Whole)
	if len(got) != 1000 || !bytes.Equal(got, bytes.Repeat(got[:1], 1000)) {
		t.Fatalf("object after the race mixes writers' bytes")
	}
}

type failingReader struct {
	r   io.Reader
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, f.err
	}
	return n, err
}

func testFailedReader(t *testing.T, s storage.Store, root string) {
	boom := errors.New("hash mismatch")
	for _, size := range []int{10, 7 << 20, 11 << 20} {
		key := fmt.Sprintf("%s/failed-%d", root, size)
		err := s.Put(ctx, key, &failingReader{r: bytes.NewReader(random(t, size)), err: boom}, storage.PutOptions{Size: -1})
		if !errors.Is(err, boom) {
			t.Fatalf("Put of %d bytes with a reader failing at the end: got %v, want the reader's error", size, err)
		}
		_, err = s.Stat(ctx, key)
		wantNotFound(t, fmt.Sprintf("Stat after a failed Put of %d bytes", size), err)
	}
	// A failed overwrite keeps the old object.
	key := root + "/keep"
	put(t, s, key, []byte("old"))
	_ = s.Put(ctx, key, &failingReader{r: bytes.NewReader([]byte("new")), err: boom}, storage.PutOptions{Size: -1})
	if got, _ := get(t, s, key, storage.Whole); string(got) != "old" {
		t.Fatalf("a failed overwrite changed the object to %q", got)
	}
	// A cancelled context commits nothing either.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	key = root + "/cancelled"
	_ = s.Put(cctx, key, bytes.NewReader([]byte("x")), storage.PutOptions{Size: 1})
	_, err := s.Stat(ctx, key)
	wantNotFound(t, "Stat after a cancelled Put", err)
}

func testRange(t *testing.T, s storage.Store, root string) {
	data := []byte("0123456789abcdef")
	key := root + "/range.bin"
	put(t, s, key, data)
	cases := []struct {
		rng  storage.Range
		want string
	}{
		{storage.Range{Offset: 0, Length: -1}, "0123456789abcdef"},
		{storage.Range{Offset: 10, Length: -1}, "abcdef"},
		{storage.Range{Offset: 2, Length: 3}, "234"},
		{storage.Range{Offset: 15, Length: 1}, "f"},
		{storage.Range{Offset: 12, Length: 100}, "cdef"},
	}
	for _, c := range cases {
		got, info := get(t, s, key, c.rng)
		if string(got) != c.want || info.Size != int64(len(data)) {
			t.Errorf("Get %+v = %q (size %d), want %q (size %d)", c.rng, got, info.Size, c.want, len(data))
		}
	}
	_, _, err := s.Get(ctx, key, storage.Range{Offset: 16, Length: -1})
	if !errors.Is(err, storage.ErrInvalidRange) {
		t.Fatalf("Get beyond the end: got %v, want ErrInvalidRange", err)
	}
}

func testLarge(t *testing.T, s storage.Store, root string) {
	if testing.Short() {
		t.Skip("large stream skipped in -short")
	}
	data := random(t, 13<<20+17)
	key := root + "/large.whl"
	// io.MultiReader hides the length and any Seek: a pure stream.
	if err := s.Put(ctx, key, io.MultiReader(bytes.NewReader(data)), storage.PutOptions{Size: -1}); err != nil {
		t.Fatalf("Put of a %d-byte stream: %v", len(data), err)
	}
	got, info := get(t, s, key, storage.Whole)
	if !bytes.Equal(got, data) || info.Size != int64(len(data)) {
		t.Fatalf("large round trip: got %d bytes (size %d), want %d identical", len(got), info.Size, len(data))
	}
	part, _ := get(t, s, key, storage.Range{Offset: 6 << 20, Length: 1 << 20})
	if !bytes.Equal(part, data[6<<20:7<<20]) {
		t.Fatalf("range inside a multipart object differs")
	}
}

func testList(t *testing.T, s storage.Store, root string) {
	for _, k := range []string{"one/two/a", "one/two/sub/b", "one/two-other/c", "one/twox"} {
		put(t, s, root+"/"+k, []byte(k))
	}
	var got []string
	err := s.List(ctx, root+"/one/two/", func(i storage.Info) error {
		got = append(got, i.Key[len(root)+1:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	if fmt.Sprint(got) != "[one/two/a one/two/sub/b]" {
		t.Fatalf("List one/two/ = %v, want only one/two/a and one/two/sub/b", got)
	}
	got = nil
	if err := s.List(ctx, root+"/nothing/", func(i storage.Info) error { got = append(got, i.Key); return nil }); err != nil || len(got) != 0 {
		t.Fatalf("List of an unknown prefix = %v, %v; want nothing", got, err)
	}
}

func testInvalidKeys(t *testing.T, s storage.Store, root string) {
	for _, k := range []string{"", "/abs", root + "/../escape", root + "//double", root + "/./dot", root + "/.hidden", root + `/back\slash`} {
		if err := s.Put(ctx, k, bytes.NewReader([]byte("x")), storage.PutOptions{Size: 1}); err == nil {
			t.Errorf("Put accepted the invalid key %q", k)
		}
		if _, err := s.Stat(ctx, k); err == nil || errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Stat of the invalid key %q: got %v, want a validation error", k, err)
		}
	}
}

func testDelete(t *testing.T, s storage.Store, root string) {
	key := root + "/del/x"
	put(t, s, key, []byte("x"))
	put(t, s, root+"/del-keep", []byte("y"))
	if err := s.Delete(ctx, key); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	_, err := s.Stat(ctx, key)
	wantNotFound(t, "Stat after Delete", err)
	if _, err := s.Stat(ctx, root+"/del-keep"); err != nil {
		t.Fatalf("Delete removed a neighbour: %v", err)
	}
}

// testIfMatch: a Put with IfMatch commits only over the version it names;
// a Put over another version, or over a missing object, changes nothing.
func testIfMatch(t *testing.T, s storage.Store, root string) {
	key := root + "/index.json"
	put(t, s, key, []byte("v1"))
	info, err := s.Stat(ctx, key)
	if err != nil || info.ETag == "" {
		t.Fatalf("Stat after Put: %v, ETag %q", err, info.ETag)
	}
	if _, gi := get(t, s, key, storage.Whole); gi.ETag != info.ETag {
		t.Errorf("Get and Stat disagree on the ETag: %q vs %q", gi.ETag, info.ETag)
	}
	if err := s.Put(ctx, key, bytes.NewReader([]byte("v2")), storage.PutOptions{Size: 2, IfMatch: info.ETag}); err != nil {
		t.Fatalf("Put over the named version: %v", err)
	}
	info2, _ := s.Stat(ctx, key)
	if info2.ETag == info.ETag {
		t.Fatalf("the ETag did not change with the content")
	}
	err = s.Put(ctx, key, bytes.NewReader([]byte("v3")), storage.PutOptions{Size: 2, IfMatch: info.ETag})
	if !errors.Is(err, storage.ErrPreconditionFailed) {
		t.Fatalf("Put over a stale version: got %v, want ErrPreconditionFailed", err)
	}
	if b, _ := get(t, s, key, storage.Whole); string(b) != "v2" {
		t.Fatalf("a failed conditional Put changed the object to %q", b)
	}
	err = s.Put(ctx, root+"/missing", bytes.NewReader([]byte("x")), storage.PutOptions{Size: 1, IfMatch: info.ETag})
	if !errors.Is(err, storage.ErrPreconditionFailed) {
		t.Fatalf("conditional Put of a missing object: got %v, want ErrPreconditionFailed", err)
	}
}

// testIfMatchRace: writers that read, modify and write back one index
// with IfMatch, retrying on ErrPreconditionFailed, all get their entry
// in: none is lost.
func testIfMatchRace(t *testing.T, s storage.Store, root string) {
	key := root + "/index"
	if err := s.Put(ctx, key, bytes.NewReader(nil), storage.PutOptions{Size: 0, CreateOnly: true}); err != nil {
		t.Fatal(err)
	}
	const writers = 8
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for attempt := 0; attempt < 200; attempt++ {
				rc, info, err := s.Get(ctx, key, storage.Whole)
				if err != nil {
					errs <- err
					return
				}
				cur, _ := io.ReadAll(rc)
				rc.Close()
				next := append(cur, []byte(fmt.Sprintf("w%d\n", i))...)
				err = s.Put(ctx, key, bytes.NewReader(next), storage.PutOptions{Size: int64(len(next)), IfMatch: info.ETag})
				if err == nil {
					return
				}
				if !errors.Is(err, storage.ErrPreconditionFailed) {
					errs <- err
					return
				}
			}
			errs <- fmt.Errorf("writer %d gave up", i)
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	b, _ := get(t, s, key, storage.Whole)
	for i := 0; i < writers; i++ {
		if !bytes.Contains(b, []byte(fmt.Sprintf("w%d\n", i))) {
			t.Errorf("writer %d's entry was lost: %q", i, b)
		}
	}
}
