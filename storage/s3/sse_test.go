package s3_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/mirror-proxy/mirror-proxy/internal/testenv"
	"github.com/mirror-proxy/mirror-proxy/storage"
	s3store "github.com/mirror-proxy/mirror-proxy/storage/s3"
)

// Every object write (single PUTs, conditional ones, multipart uploads,
// and the startup check's probe) asks for the configured server-side
// encryption.
func TestEveryWriteAsksForServerSideEncryption(t *testing.T) {
	srv := testenv.StartS3(t)
	for _, c := range []struct{ sse, kmsKey, wantBucketKey string }{
		{s3store.SSEAES256, "", ""},
		{s3store.SSEKMS, "alias/mirror-proxy", "true"},
	} {
		t.Run(c.sse, func(t *testing.T) {
			front := testenv.StartS3Front(t, srv.Endpoint)
			ctx := context.Background()
			st, err := s3store.New(ctx, s3store.Config{Bucket: srv.NewBucket(t), Endpoint: front.URL, Region: srv.Region,
				AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey, PathStyle: true,
				SSE: c.sse, SSEKMSKeyID: c.kmsKey})
			if err != nil {
				t.Fatal(err)
			}
			// versitygw does not implement SSE-KMS: writes that ask for it
			// may be refused there; what is checked is what was asked.
			checkErr := st.Check(ctx, "mirror-meta")
			if c.sse == s3store.SSEAES256 && checkErr != nil {
				t.Fatalf("Check: %v", checkErr)
			}
			if checkErr != nil && !strings.Contains(checkErr.Error(), "STORAGE_AWS_SSE="+c.sse) {
				t.Errorf("a refused encrypted probe does not name the setting: %v", checkErr)
			}
			_ = st.Put(ctx, "mirror-meta/m/a.json", strings.NewReader("{}"), storage.PutOptions{Size: 2})
			_ = st.Put(ctx, "mirror-dist/m/b.zip", strings.NewReader("zip"), storage.PutOptions{Size: 3, CreateOnly: true})
			_ = st.Put(ctx, "mirror-dist/m/big.bin", bytes.NewReader(make([]byte, 11<<20)), storage.PutOptions{Size: -1})
			got := front.Writes()
			ops := map[string]bool{}
			for _, w := range got {
				ops[w.Op] = true
				sse, kmsKey := w.Header.Get("X-Amz-Server-Side-Encryption"), w.Header.Get("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id")
				bucketKey := w.Header.Get("X-Amz-Server-Side-Encryption-Bucket-Key-Enabled")
				if sse != c.sse || kmsKey != c.kmsKey || bucketKey != c.wantBucketKey {
					t.Errorf("%s %s asked for SSE %q, key %q, bucket key %q; want %q, %q, %q",
						w.Op, w.Path, sse, kmsKey, bucketKey, c.sse, c.kmsKey, c.wantBucketKey)
				}
			}
			if !ops["PutObject"] || !ops["CreateMultipartUpload"] || len(got) < 4 {
				t.Errorf("writes seen: %+v", got)
			}
		})
	}
}
