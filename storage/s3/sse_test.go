package s3_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/mirror-proxy/mirror-proxy/internal/testenv"
	"github.com/mirror-proxy/mirror-proxy/storage"
	s3store "github.com/mirror-proxy/mirror-proxy/storage/s3"
)

// write is one object write as an S3 front saw it.
type write struct {
	op          string // PutObject, CreateMultipartUpload
	key         string
	sse, kmsKey string
	bucketKey   string
}

// recordingFront is an S3 endpoint that records the object writes sent
// through it and passes every request on to the real store unchanged.
func recordingFront(t *testing.T, endpoint string) (string, func() []write) {
	t.Helper()
	target, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var writes []write
	rp := httputil.NewSingleHostReverseProxy(target)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		op := ""
		switch {
		case r.Method == http.MethodPut && !q.Has("partNumber") && !q.Has("uploadId"):
			op = "PutObject"
		case r.Method == http.MethodPost && q.Has("uploads"):
			op = "CreateMultipartUpload"
		}
		if op != "" {
			mu.Lock()
			writes = append(writes, write{op: op, key: r.URL.Path,
				sse:       r.Header.Get("X-Amz-Server-Side-Encryption"),
				kmsKey:    r.Header.Get("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id"),
				bucketKey: r.Header.Get("X-Amz-Server-Side-Encryption-Bucket-Key-Enabled")})
			mu.Unlock()
		}
		rp.ServeHTTP(w, r) // Host stays the front's: the signature covers it

	}))
	t.Cleanup(front.Close)
	return front.URL, func() []write { mu.Lock(); defer mu.Unlock(); return append([]write(nil), writes...) }
}

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
			endpoint, writes := recordingFront(t, srv.Endpoint)
			ctx := context.Background()
			st, err := s3store.New(ctx, s3store.Config{Bucket: srv.NewBucket(t), Endpoint: endpoint, Region: srv.Region,
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
			got := writes()
			ops := map[string]bool{}
			for _, w := range got {
				ops[w.op] = true
				if w.sse != c.sse || w.kmsKey != c.kmsKey || w.bucketKey != c.wantBucketKey {
					t.Errorf("%s %s asked for SSE %q, key %q, bucket key %q; want %q, %q, %q",
						w.op, w.key, w.sse, w.kmsKey, w.bucketKey, c.sse, c.kmsKey, c.wantBucketKey)
				}
			}
			if !ops["PutObject"] || !ops["CreateMultipartUpload"] || len(got) < 4 {
				t.Errorf("writes seen: %+v", got)
			}
		})
	}
}
