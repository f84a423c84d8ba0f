package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/fakepypi"
	"github.com/mirror-proxy/mirror-proxy/internal/testenv"
)

// STORAGE_CLASSES: published packages go to a bucket of their own, in
// their storage class, and mirrored files to the default bucket in
// another class, with pip and twine working as before.
func TestStorageClassesSplitBuckets(t *testing.T) {
	testenv.Deadline(t, 4*time.Minute)
	if _, ok := testenv.LookPath("twine"); !ok {
		testenv.Missing(t, "twine", "apt-get install twine")
	}
	s3 := testenv.StartS3(t)
	front := testenv.StartS3Front(t, s3.Endpoint)
	shared, private := s3.NewBucket(t), s3.NewBucket(t)
	up := fakepypi.New(false)
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	px := startProxy(t, map[string]string{
		"STORAGE_SOURCE": "s3", "STORAGE_AWS_BUCKET": shared, "STORAGE_AWS_ARGS": front.ArgsJSON(s3),
		"STORAGE_CLASSES": `{"artifact": {"bucket": "` + private + `", "storageClass": "STANDARD_IA"},` +
			`"mirror-dist": {"storageClass": "INTELLIGENT_TIERING"}}`,
		"MIRRORS":     `[{"name":"pypi","type":"pypi","url":"` + up.IndexURL() + `","hosted":true,"public":true}]`,
		"AUTH_TOKENS": hostedTokensJSON(),
	})
	index, legacy := px.URL+"/pypi/simple/", px.URL+"/pypi/legacy/"

	rel := fakepypi.Release{Version: "1.0", RequiresDist: []string{"dep-pkg>=1"}, RequiresPython: ">=3.7"}
	whl, _, whlName := fakepypi.BuildWheel("private-pkg", rel)
	whlPath := filepath.Join(t.TempDir(), whlName)
	os.WriteFile(whlPath, whl, 0o644)
	if out, err := twine(t, legacy, e2eWrite, whlPath); err != nil {
		t.Fatalf("twine upload: %v\n%s", err, tailLines(out, 30))
	}
	dir := t.TempDir()
	mustPip(t, index, "install", "--target", dir, "private-pkg") // and its mirrored dependency
	if got := installed(t, dir); !strings.Contains(got, "private_pkg-1.0") || !strings.Contains(got, "dep_pkg-1.0") {
		t.Fatalf("installed %q", got)
	}

	for _, k := range s3.Keys(t, private) {
		if !strings.HasPrefix(k, "artifact/") {
			t.Errorf("the private bucket holds %s", k)
		}
	}
	var dists, artifacts int
	for _, k := range s3.Keys(t, shared) {
		if strings.HasPrefix(k, "artifact/") {
			t.Errorf("the shared bucket holds the published %s", k)
		}
		if strings.HasPrefix(k, "mirror-dist/") {
			dists++
		}
	}
	for _, w := range front.Writes() {
		bucket, key, _ := strings.Cut(strings.TrimPrefix(w.Path, "/"), "/")
		class := w.Header.Get("X-Amz-Storage-Class")
		want := ""
		switch {
		case strings.HasPrefix(key, "artifact/"):
			artifacts++
			if bucket != private {
				t.Errorf("%s written to bucket %s", key, bucket)
			}
			want = "STANDARD_IA"
		case strings.HasPrefix(key, "mirror-dist/"):
			want = "INTELLIGENT_TIERING"
		}
		if class != want {
			t.Errorf("%s %s/%s: storage class %q, want %q", w.Op, bucket, key, class, want)
		}
	}
	if dists == 0 || artifacts == 0 {
		t.Errorf("%d mirrored files in the shared bucket, %d writes of published ones", dists, artifacts)
	}
}
