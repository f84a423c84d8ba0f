package e2e

import (
	"bytes"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/fakepypi"
	"github.com/mirror-proxy/mirror-proxy/internal/testenv"
)

// A replica started while S3 is down starts degraded (so a fleet can grow
// during an outage), serves from the upstream meanwhile, and reports
// storage ok once S3 is back.
func TestStartsDegradedWhileS3IsDown(t *testing.T) {
	testenv.Deadline(t, time.Minute)
	s3 := testenv.StartS3(t)
	bucket := s3.NewBucket(t)
	up := fakepypi.New(false)
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	s3.Stop()
	px := startProxy(t, map[string]string{
		"STORAGE_SOURCE": "s3", "STORAGE_AWS_BUCKET": bucket, "STORAGE_AWS_ARGS": s3.ArgsJSON(),
		"MIRRORS": `[{"name":"pypi","type":"pypi","url":"` + up.IndexURL() + `"}]`,
	})
	waitReady := func(want string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			_, _, body := get(t, px.URL+"/readyz")
			if bytes.Contains(body, []byte(want)) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz never said %s: %s", want, body)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitReady(`"status":"degraded"`)
	if code, _, body := get(t, px.URL+"/pypi/simple/dep-pkg/"); code != 200 {
		t.Errorf("a page with S3 down: %d %s", code, body)
	}
	s3.Start()
	waitReady(`"storage":"ok"`)
}
