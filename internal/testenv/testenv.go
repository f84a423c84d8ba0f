// Package testenv starts the real services tests need (an S3-compatible
// server) and decides what happens when one is missing: a plain
// `go test ./...` skips with a message, but under CI=true a missing service
// is a failure, never a silent skip.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Missing skips the test (or fails it under CI=true) because a service or
// tool it needs is not available.
func Missing(t testing.TB, what, install string) {
	t.Helper()
	msg := fmt.Sprintf("%s not available (%s); run ./scripts/test to install everything the tests need", what, install)
	if os.Getenv("CI") == "true" {
		t.Fatal("CI=true: " + msg)
	}
	t.Skip(msg)
}

// LookPath finds a tool on PATH or in $(go env GOPATH)/bin.
func LookPath(name string) (string, bool) {
	if p, err := exec.LookPath(name); err == nil {
		return p, true
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		home, _ := os.UserHomeDir()
		gopath = filepath.Join(home, "go")
	}
	// Go's and Rust's per-user installs (go install, rustup) may be off PATH.
	cargoHome := os.Getenv("CARGO_HOME")
	if home, err := os.UserHomeDir(); cargoHome == "" && err == nil {
		cargoHome = filepath.Join(home, ".cargo")
	}
	for _, dir := range []string{os.Getenv("GOBIN"), filepath.Join(gopath, "bin"), filepath.Join(cargoHome, "bin")} {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, true
		}
	}
	return "", false
}

// FreePort returns a free TCP port on 127.0.0.1.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// S3 is a running S3-compatible server.
type S3 struct {
	Endpoint  string
	AccessKey string
	SecretKey string
	Region    string
	Dir       string
	Client    *s3.Client
	cmd       *exec.Cmd
	host      string
	port      int
	bin       string
	t         testing.TB
}

// StartS3 starts versitygw (posix backend, metadata in a sidecar directory)
// on a free port in a temp directory; it is stopped when the test ends.
func StartS3(t testing.TB) *S3 { t.Helper(); return StartS3On(t, "127.0.0.1") }

// StartS3On is StartS3 listening on host (0.0.0.0 for containers to reach).
func StartS3On(t testing.TB, host string) *S3 {
	t.Helper()
	bin, ok := LookPath("versitygw")
	if !ok {
		Missing(t, "versitygw", "go install github.com/versity/versitygw/cmd/versitygw@v1.8.0")
	}
	dir := t.TempDir()
	s := &S3{AccessKey: "testaccess", SecretKey: "testsecret1234", Region: "us-east-1", Dir: dir, bin: bin, t: t, port: FreePort(t), host: host}
	s.Endpoint = fmt.Sprintf("http://127.0.0.1:%d", s.port)
	s.Start()
	t.Cleanup(s.Stop)
	s.Client = s3.New(s3.Options{
		Region: s.Region, BaseEndpoint: aws.String(s.Endpoint), UsePathStyle: true,
		Credentials:                aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, "")),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
	return s
}

// Start (re)starts the server on its port and data directory.
func (s *S3) Start() {
	t := s.t
	data := filepath.Join(s.Dir, "data")
	side := filepath.Join(s.Dir, "sidecar")
	_ = os.MkdirAll(data, 0o755)
	_ = os.MkdirAll(side, 0o755)
	cmd := exec.Command(s.bin, "--port", fmt.Sprintf("%s:%d", s.host, s.port), "posix", "--sidecar", side, data)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.SecretKey)
	logf, _ := os.Create(filepath.Join(s.Dir, "versitygw.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := Start(t, cmd); err != nil {
		t.Fatalf("start versitygw: %v", err)
	}
	s.cmd = cmd
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(s.Endpoint)
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(s.Dir, "versitygw.log"))
			t.Fatalf("versitygw did not start on %s: %v\n%s", s.Endpoint, err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops the server (its data stays).
func (s *S3) Stop() {
	if s.cmd != nil {
		_ = s.cmd.Process.Signal(syscall.SIGCONT) // a paused server dies too
		KillGroup(s.cmd)
		s.cmd = nil
	}
}

// NewBucket creates a bucket with a random name and returns it.
func (s *S3) NewBucket(t testing.TB) string {
	t.Helper()
	var rnd [5]byte
	_, _ = rand.Read(rnd[:])
	name := "test-" + hex.EncodeToString(rnd[:])
	if _, err := s.Client.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: &name}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	return name
}

// ArgsJSON is the STORAGE_AWS_ARGS value that reaches this server.
func (s *S3) ArgsJSON() string { return s.ArgsJSONVia(s.Endpoint) }

// ArgsJSONVia is ArgsJSON with another endpoint (as a container sees it).
func (s *S3) ArgsJSONVia(endpoint string) string {
	return fmt.Sprintf(`{"endpoint":%q,"accessKeyId":%q,"accessKeySecret":%q,"region":%q,"pathStyleEndpoint":true}`,
		endpoint, s.AccessKey, s.SecretKey, s.Region)
}

// Port is the server's port.
func (s *S3) Port() int { return s.port }

// Keys lists every key in bucket.
func (s *S3) Keys(t testing.TB, bucket string) []string {
	t.Helper()
	var keys []string
	p := s3.NewListObjectsV2Paginator(s.Client, &s3.ListObjectsV2Input{Bucket: &bucket})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("list bucket %s: %v", bucket, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, *o.Key)
		}
	}
	return keys
}

// Pause freezes the server (SIGSTOP): connections are accepted by the
// kernel but nothing answers, like a hung store. Resume undoes it.
func (s *S3) Pause() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGSTOP)
	}
}

// Resume lets a paused server go on (SIGCONT).
func (s *S3) Resume() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGCONT)
	}
}
