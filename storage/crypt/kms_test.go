package crypt_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/mirror-proxy/mirror-proxy/storage"
	"github.com/mirror-proxy/mirror-proxy/storage/crypt"
	"github.com/mirror-proxy/mirror-proxy/storage/local"
	"github.com/mirror-proxy/mirror-proxy/storage/storagetest"
)

// fakeKMS answers GenerateDataKey and Decrypt in KMS's JSON protocol,
// keeping the keys it made.
type fakeKMS struct {
	mu       sync.Mutex
	keys     map[string][]byte // wrapped → key
	decrypts atomic.Int64
}

func startFakeKMS(t *testing.T) (*fakeKMS, *kms.Client) {
	f := &fakeKMS{keys: map[string][]byte{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	client := kms.New(kms.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("k", "s", "")})
	return f, client
}

func (f *fakeKMS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var in struct {
		KeyId          string
		KeySpec        string
		CiphertextBlob []byte
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	f.mu.Lock()
	defer f.mu.Unlock()
	switch op := r.Header.Get("X-Amz-Target"); op {
	case "TrentService.GenerateDataKey":
		if in.KeyId != "alias/mirror" || in.KeySpec != "AES_256" {
			http.Error(w, `{"__type":"NotFoundException"}`, 400)
			return
		}
		key := make([]byte, 32)
		rand.Read(key)
		wrapped := make([]byte, 48)
		rand.Read(wrapped)
		f.keys[string(wrapped)] = key
		json.NewEncoder(w).Encode(map[string]string{"KeyId": in.KeyId,
			"Plaintext": base64.StdEncoding.EncodeToString(key), "CiphertextBlob": base64.StdEncoding.EncodeToString(wrapped)})
	case "TrentService.Decrypt":
		f.decrypts.Add(1)
		key, ok := f.keys[string(in.CiphertextBlob)]
		if in.KeyId != "" && in.KeyId != "alias/mirror" {
			w.WriteHeader(400)
			w.Write([]byte(`{"__type":"IncorrectKeyException","message":"another key"}`))
			return
		}
		if !ok {
			w.WriteHeader(400)
			w.Write([]byte(`{"__type":"InvalidCiphertextException","message":"not mine"}`))
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"KeyId": "alias/mirror", "Plaintext": base64.StdEncoding.EncodeToString(key)})
	default:
		http.Error(w, "unknown "+op, 400)
	}
}

func TestConformanceWithKMS(t *testing.T) {
	_, client := startFakeKMS(t)
	storagetest.Run(t, func(t *testing.T) storage.Store {
		s, err := local.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return crypt.New(s, crypt.NewKMS(client, "alias/mirror"))
	})
}

// Objects are sealed with KMS data keys; reads ask KMS once per object
// for a while, not per read.
func TestKMSDataKeysAreCached(t *testing.T) {
	f, client := startFakeKMS(t)
	st, _ := local.New(t.TempDir())
	s := crypt.New(st, crypt.NewKMS(client, "alias/mirror"))
	data := bytes.Repeat([]byte("x"), 1000)
	if err := s.Put(ctx, "a/b", bytes.NewReader(data), storage.PutOptions{Size: 1000}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if got, err := read(t, s, "a/b", storage.Whole); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read %d: %v", i, err)
		}
	}
	if n := f.decrypts.Load(); n != 1 {
		t.Errorf("%d KMS Decrypt calls for 5 reads of one object, want 1", n)
	}
	if _, err := read(t, crypt.New(st, crypt.NewKMS(client, "alias/other")), "a/b", storage.Whole); err == nil || !strings.Contains(err.Error(), "KMS") {
		t.Errorf("a read with another KMS key: %v", err)
	}
}
