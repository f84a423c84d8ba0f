package s3_test

import (
	"context"
	"strings"
	"testing"

	"github.com/mirror-proxy/mirror-proxy/internal/testenv"
	"github.com/mirror-proxy/mirror-proxy/storage"
	s3store "github.com/mirror-proxy/mirror-proxy/storage/s3"
	"github.com/mirror-proxy/mirror-proxy/storage/storagetest"
)

func newStore(t *testing.T, srv *testenv.S3, bucket string) *s3store.Store {
	t.Helper()
	st, err := s3store.New(context.Background(), s3store.Config{
		Bucket: bucket, Endpoint: srv.Endpoint, Region: srv.Region,
		AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey, PathStyle: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestConformance(t *testing.T) {
	srv := testenv.StartS3(t)
	st := newStore(t, srv, srv.NewBucket(t))
	// versitygw v1.8.0 answers 412 to a stale If-Match, but two writes
	// racing over one version can both succeed (seen in IfMatchRace):
	// indexes that replicas update on it need a lease around the write.
	storagetest.RunWith(t, func(t *testing.T) storage.Store { return st },
		storagetest.Options{IfMatchNotAtomic: "versitygw v1.8.0 checks If-Match, but not atomically against a racing write"})
}

func TestCheck(t *testing.T) {
	srv := testenv.StartS3(t)
	ctx := context.Background()
	good := newStore(t, srv, srv.NewBucket(t))
	if err := good.Check(ctx, "mirror-meta"); err != nil {
		t.Fatalf("Check on a good bucket: %v", err)
	}
	if !good.CreateOnlySupported() {
		t.Errorf("versitygw honours If-None-Match: *, but Check did not detect it")
	}
	if keys := srv.Keys(t, good.Bucket()); len(keys) != 0 {
		t.Errorf("Check left objects behind: %v", keys)
	}
	err := newStore(t, srv, "no-such-bucket").Check(ctx, "mirror-meta")
	if err == nil || !strings.Contains(err.Error(), `"no-such-bucket" does not exist`) {
		t.Fatalf("Check on a missing bucket: %v", err)
	}
	bad := newStore(t, srv, srv.NewBucket(t))
	bad2, _ := s3store.New(ctx, s3store.Config{Bucket: bad.Bucket(), Endpoint: srv.Endpoint, Region: srv.Region,
		AccessKeyID: srv.AccessKey, SecretAccessKey: "wrong-secret", PathStyle: true})
	if err := bad2.Check(ctx, "mirror-meta"); err == nil || !strings.Contains(err.Error(), bad.Bucket()) {
		t.Fatalf("Check with a wrong secret: %v", err)
	}
}
