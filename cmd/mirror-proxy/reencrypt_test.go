package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/mirror-proxy/mirror-proxy/storage"
	"github.com/mirror-proxy/mirror-proxy/storage/crypt"
	"github.com/mirror-proxy/mirror-proxy/storage/local"
)

// storage reencrypt turns a mixed store into an encrypted one: every
// object reads back the same through the key, none holds plaintext, and a
// second run has nothing to do.
func TestReencryptConvertsAMixedStore(t *testing.T) {
	dir := t.TempDir()
	raw, _ := local.New(dir)
	key := make([]byte, 32)
	rand.Read(key)
	keyFile := filepath.Join(t.TempDir(), "k")
	os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(key)), 0o600)
	lk, _ := crypt.NewLocalKey(key)
	enc := crypt.New(raw, lk)
	ctx := context.Background()
	objects := map[string][]byte{}
	for i, k := range []string{"mirror-meta/pypi/simple/a.json", "mirror-dist/pypi/a/x.whl", "artifact/pypi/index/a.json", "mirror-dist/npm/big.tgz"} {
		b := make([]byte, 1000+i*300_000)
		rand.Read(b)
		objects[k] = b
		st := storage.Store(raw)
		if i%2 == 1 {
			st = enc // already encrypted: a mixed store
		}
		if err := st.Put(ctx, k, bytes.NewReader(b), storage.PutOptions{Size: int64(len(b))}); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("STORAGE_SOURCE", "local")
	t.Setenv("STORAGE_LOCAL_DIR", dir)
	t.Setenv("STORAGE_ENCRYPTION", "key:"+keyFile)
	cfg, err := LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	n, err := reencrypt(ctx, cfg, log, io.Discard)
	if err != nil || n.done != 2 || n.skipped != 2 || n.failed != 0 {
		t.Fatalf("reencrypt: %+v %v", n, err)
	}
	for k, want := range objects {
		stored, _ := os.ReadFile(filepath.Join(dir, filepath.FromSlash(k)))
		if !crypt.Encrypted(stored) || bytes.Contains(stored, want[:32]) {
			t.Errorf("%s is not encrypted", k)
		}
		rc, _, err := enc.Get(ctx, k, storage.Whole)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s reads back wrong: %v", k, err)
		}
	}
	if n, err := reencrypt(ctx, cfg, log, io.Discard); err != nil || n.done != 0 || n.skipped != 4 {
		t.Errorf("a second run: %+v %v", n, err)
	}
}
