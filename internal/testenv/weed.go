package testenv

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// StartSeaweedFS starts SeaweedFS's S3 gateway (weed server -s3: master,
// volume, filer and S3 in one process) in a temp directory, when `weed`
// is on PATH or MIRROR_TEST_WEED=1 asks for it; otherwise the test is
// skipped with a message, under CI too: `go install` refuses SeaweedFS
// (its go.mod has replace directives) and building it from source takes
// about 35 minutes on two cores, so ./scripts/test does not install it.
// Tried by hand (see docs/operations.md); this harness is how to repeat
// it.
func StartSeaweedFS(t testing.TB) *S3 {
	t.Helper()
	bin, ok := LookPath("weed")
	if !ok {
		msg := "SeaweedFS (weed) not on PATH: build it from https://github.com/seaweedfs/seaweedfs (make) to run the storage suite against a second S3 implementation"
		if os.Getenv("MIRROR_TEST_WEED") == "1" {
			t.Fatal("MIRROR_TEST_WEED=1: " + msg)
		}
		t.Skip(msg)
	}
	dir := t.TempDir()
	s := &S3{AccessKey: "weedaccess", SecretKey: "weedsecret1234", Region: "us-east-1", Dir: dir, t: t, port: FreePort(t), host: "127.0.0.1"}
	s.Endpoint = fmt.Sprintf("http://127.0.0.1:%d", s.port)
	conf := filepath.Join(dir, "s3.json")
	os.WriteFile(conf, []byte(fmt.Sprintf(`{"identities":[{"name":"test","credentials":[{"accessKey":%q,"secretKey":%q}],"actions":["Admin","Read","Write","List","Tagging"]}]}`,
		s.AccessKey, s.SecretKey)), 0o600)
	data := filepath.Join(dir, "data")
	os.MkdirAll(data, 0o755)
	port := func() string { return fmt.Sprint(FreePort(t)) }
	cmd := exec.Command(bin, "server", "-dir="+data, "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
		"-master.port="+port(), "-master.port.grpc="+port(), "-volume.port="+port(), "-volume.port.grpc="+port(),
		"-filer.port="+port(), "-filer.port.grpc="+port(), "-s3", fmt.Sprintf("-s3.port=%d", s.port), "-s3.config="+conf)
	logf, _ := os.Create(filepath.Join(dir, "weed.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := Start(t, cmd); err != nil {
		t.Fatalf("start weed: %v", err)
	}
	s.cmd = cmd
	t.Cleanup(s.Stop)
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(s.Endpoint)
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "weed.log"))
			t.Fatalf("SeaweedFS's S3 gateway did not start on %s: %v\n%s", s.Endpoint, err, log)
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.Client = s3.New(s3.Options{
		Region: s.Region, BaseEndpoint: aws.String(s.Endpoint), UsePathStyle: true,
		Credentials:                aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, "")),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
	return s
}
