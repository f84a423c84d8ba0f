package testenv

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
)

// S3Write is one object write as an S3Front saw it: the operation
// (PutObject or CreateMultipartUpload), the path (/bucket/key) and the
// request's headers.
type S3Write struct {
	Op     string
	Path   string
	Header http.Header
}

// S3Front is an S3 endpoint in front of a real one that records the
// object writes sent through it and passes every request on unchanged
// (the Host header included: the signature covers it).
type S3Front struct {
	URL    string
	mu     sync.Mutex
	writes []S3Write
}

// StartS3Front starts a front for endpoint until the test ends.
func StartS3Front(t testing.TB, endpoint string) *S3Front {
	t.Helper()
	target, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	f := &S3Front{}
	rp := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		op := ""
		switch {
		case r.Method == http.MethodPut && !q.Has("partNumber") && !q.Has("uploadId"):
			op = "PutObject"
		case r.Method == http.MethodPost && q.Has("uploads"):
			op = "CreateMultipartUpload"
		}
		if op != "" {
			f.mu.Lock()
			f.writes = append(f.writes, S3Write{Op: op, Path: r.URL.Path, Header: r.Header.Clone()})
			f.mu.Unlock()
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

// Writes are the object writes seen so far.
func (f *S3Front) Writes() []S3Write {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]S3Write(nil), f.writes...)
}

// ArgsJSONVia is STORAGE_AWS_ARGS for s through the front.
func (f *S3Front) ArgsJSON(s *S3) string { return s.ArgsJSONVia(f.URL) }
