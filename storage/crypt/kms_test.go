package crypt_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/mirror-proxy/mirror-proxy/internal/fakekms"
	"github.com/mirror-proxy/mirror-proxy/storage"
	"github.com/mirror-proxy/mirror-proxy/storage/crypt"
	"github.com/mirror-proxy/mirror-proxy/storage/local"
	"github.com/mirror-proxy/mirror-proxy/storage/storagetest"
)

func startFakeKMS(t *testing.T) (*fakekms.Server, *kms.Client) {
	f := fakekms.Start(t, "alias/mirror")
	client := kms.New(kms.Options{Region: "us-east-1", BaseEndpoint: aws.String(f.URL),
		Credentials: credentials.NewStaticCredentialsProvider("k", "s", "")})
	return f, client
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
	if n := f.Decrypts.Load(); n != 1 {
		t.Errorf("%d KMS Decrypt calls for 5 reads of one object, want 1", n)
	}
	if _, err := read(t, crypt.New(st, crypt.NewKMS(client, "alias/other")), "a/b", storage.Whole); err == nil || !strings.Contains(err.Error(), "KMS") {
		t.Errorf("a read with another KMS key: %v", err)
	}
}
