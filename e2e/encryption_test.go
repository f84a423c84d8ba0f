package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/mirror-proxy/mirror-proxy/internal/fakekms"
	"github.com/mirror-proxy/mirror-proxy/internal/fakepypi"
	"github.com/mirror-proxy/mirror-proxy/internal/testenv"
)

// STORAGE_ENCRYPTION, with a local key and with KMS (a fake one, reached
// through the standard AWS_ENDPOINT_URL_KMS): pip installs as before, on a
// bucket that already held plaintext objects (mixed during a migration);
// what is stored from then on is not the plaintext; HEAD and ranges work;
// an object altered in the bucket is never served as a clean 200.
func TestClientSideEncryptionWithPip(t *testing.T) {
	testenv.Deadline(t, 4*time.Minute)
	for _, kind := range []string{"key", "kms"} {
		t.Run(kind, func(t *testing.T) { clientSideEncryption(t, kind) })
	}
}

func clientSideEncryption(t *testing.T, kind string) {
	s3srv := testenv.StartS3(t)
	bucket := s3srv.NewBucket(t)
	up := fakepypi.New(false)
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	env := map[string]string{
		"STORAGE_SOURCE": "s3", "STORAGE_AWS_BUCKET": bucket, "STORAGE_AWS_ARGS": s3srv.ArgsJSON(),
		"MIRRORS": `[{"name":"pypi","type":"pypi","url":"` + up.IndexURL() + `"}]`,
	}
	// Before encryption: dep-pkg is stored in plaintext.
	plain := startProxy(t, env)
	mustPip(t, plain.URL+"/pypi/simple/", "install", "--target", t.TempDir(), "dep-pkg")
	plain.Stop()

	if kind == "key" {
		key := make([]byte, 32)
		rand.Read(key)
		keyFile := filepath.Join(t.TempDir(), "storage.key")
		os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600)
		env["STORAGE_ENCRYPTION"] = "key:" + keyFile
	} else {
		kms := fakekms.Start(t, "alias/packages")
		env["STORAGE_ENCRYPTION"] = "kms:alias/packages"
		env["AWS_ENDPOINT_URL_KMS"] = kms.URL
	}
	px := startProxy(t, env)
	dir := t.TempDir()
	mustPip(t, px.URL+"/pypi/simple/", "install", "--target", dir, "Foo.Bar") // needs the plaintext dep-pkg too
	if got := installed(t, dir); got != "dep_pkg-1.0 foo_bar-1.0" {
		t.Fatalf("installed %q", got)
	}
	whl := fakepypi.Filename("foo-bar", "1.0")
	var whlKey string
	for _, k := range s3srv.Keys(t, bucket) {
		if strings.HasSuffix(k, "/"+whl) {
			whlKey = k
		}
	}
	if whlKey == "" {
		t.Fatalf("%s not stored", whl)
	}
	stored := getObject(t, s3srv, bucket, whlKey)
	_, want := fileOf(t, "http://"+up.Addr()+"/files/"+whl)
	if !bytes.HasPrefix(stored, []byte("MPXE")) || bytes.Contains(stored, want[:64]) {
		t.Fatalf("the stored wheel is not encrypted (%d bytes)", len(stored))
	}
	// HEAD and a range, from storage (a fresh replica has nothing in memory or on disk).
	px.Stop()
	px = startProxy(t, env)
	fileURL := px.URL + "/pypi/files/" + strings.TrimPrefix(whlKey, "mirror-dist/pypi/")
	if resp := doReq(t, "HEAD", fileURL, ""); resp.StatusCode != 200 || resp.ContentLength != int64(len(want)) {
		t.Errorf("HEAD: %d, length %d, want %d", resp.StatusCode, resp.ContentLength, len(want))
	}
	if resp := doReq(t, "GET", fileURL, "bytes=10-29"); resp.StatusCode != 206 || !bytes.Equal(readAll(resp), want[10:30]) {
		t.Errorf("range: %d", resp.StatusCode)
	}
	// Altered in the bucket: a 5xx or a cut transfer, never other bytes.
	stored[len(stored)-40] ^= 1
	putObject(t, s3srv, bucket, whlKey, stored)
	px.Stop()
	px = startProxy(t, env)
	fileURL = px.URL + "/pypi/files/" + strings.TrimPrefix(whlKey, "mirror-dist/pypi/")
	resp := doReq(t, "GET", fileURL, "")
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == 200 && err == nil && len(body) == len(want) {
		t.Errorf("an altered encrypted object was served as a clean 200 (same bytes: %v)", bytes.Equal(body, want))
	}
}

func doReq(t *testing.T, method, url, rng string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func readAll(resp *http.Response) []byte {
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}

func fileOf(t *testing.T, url string) (int, []byte) {
	resp := doReq(t, "GET", url, "")
	return resp.StatusCode, readAll(resp)
}

func getObject(t *testing.T, s *testenv.S3, bucket, key string) []byte {
	out, err := s.Client.GetObject(context.Background(), &s3.GetObjectInput{Bucket: &bucket, Key: &key})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	b, _ := io.ReadAll(out.Body)
	return b
}

func putObject(t *testing.T, s *testenv.S3, bucket, key string, b []byte) {
	if _, err := s.Client.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader(b)}); err != nil {
		t.Fatal(err)
	}
}
