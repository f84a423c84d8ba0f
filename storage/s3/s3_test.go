package s3_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

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

// failAfter yields n bytes, then fails (a client that hangs up mid-upload).
type failAfter struct{ n int }

func (f *failAfter) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("the client went away")
	}
	k := min(len(p), f.n)
	f.n -= k
	return k, nil
}

// A multipart upload that fails (its body breaks off after a part was
// sent) is aborted: no staged parts are left in the bucket.
func TestFailedMultipartUploadIsAborted(t *testing.T) {
	srv := testenv.StartS3(t)
	bucket := srv.NewBucket(t)
	st := newStore(t, srv, bucket)
	ctx := context.Background()
	if err := st.Put(ctx, "mirror-dist/m/big.bin", &failAfter{n: 12 << 20}, storage.PutOptions{Size: -1}); err == nil {
		t.Fatal("a body that broke off was stored")
	}
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(srv.Region),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, "")))
	if err != nil {
		t.Fatal(err)
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) { o.BaseEndpoint = aws.String(srv.Endpoint); o.UsePathStyle = true })
	out, err := client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Uploads) != 0 {
		t.Errorf("%d multipart uploads left staged after a failed Put", len(out.Uploads))
	}
}

// The conformance suite, the race of conditional writes included, on a
// second S3 implementation (SeaweedFS), when it is available.
func TestConformanceOnSeaweedFS(t *testing.T) {
	srv := testenv.StartSeaweedFS(t)
	st := newStore(t, srv, srv.NewBucket(t))
	if err := st.Check(context.Background(), "mirror-meta"); err != nil {
		t.Fatalf("Check: %v", err)
	}
	storagetest.Run(t, func(t *testing.T) storage.Store { return st })
}
