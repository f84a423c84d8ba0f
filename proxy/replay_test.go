package proxy

import (
	"net/http"

	"net/http/httptest"
	"testing"

	"github.com/mirror-proxy/mirror-proxy/mirror"
)

// A replay is keyed by everything a document handler may answer
// differently for; a request with anything else a handler might read
// (a condition, a range, an unknown header) or that is not a GET is not
// replayed at all.
func TestReplayKey(t *testing.T) {
	req := func(method, target string, hdr ...string) *http.Request {
		r := httptest.NewRequest(method, target, nil)
		r.RemoteAddr = "10.0.0.7:4321"
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Set(hdr[i], hdr[i+1])
		}
		return r
	}
	ignored := replayIgnoredBy([]mirror.Type{{Name: "x", ReplayIgnores: []string{"x-client-session"}}})
	base := req("GET", "http://mirror.example/pypi/simple/foo/", "Accept", "application/vnd.pypi.simple.v1+json",
		"User-Agent", "pip/24", "Accept-Encoding", "gzip", "Authorization", "Basic eDp5", "Cache-Control", "max-age=0",
		"X-Client-Session", "1234")
	k0, ok := replayKeyOf(base, ignored)
	if !ok {
		t.Fatal("a plain GET is not replayable")
	}
	for name, r := range map[string]*http.Request{
		"other Accept":       req("GET", "http://mirror.example/pypi/simple/foo/", "Accept", "text/html", "Accept-Encoding", "gzip"),
		"no gzip":            req("GET", "http://mirror.example/pypi/simple/foo/", "Accept", "application/vnd.pypi.simple.v1+json"),
		"other host":         req("GET", "http://other.example/pypi/simple/foo/", "Accept", "application/vnd.pypi.simple.v1+json", "Accept-Encoding", "gzip"),
		"query":              req("GET", "http://mirror.example/pypi/simple/foo/?format=json", "Accept", "application/vnd.pypi.simple.v1+json", "Accept-Encoding", "gzip"),
		"forwarded as https": req("GET", "http://mirror.example/pypi/simple/foo/", "Accept", "application/vnd.pypi.simple.v1+json", "Accept-Encoding", "gzip", "X-Forwarded-Proto", "https"),
	} {
		k, ok := replayKeyOf(r, ignored)
		if !ok || k == k0 {
			t.Errorf("%s: replayable %v, same key as the plain request: %v", name, ok, k == k0)
		}
	}
	for name, r := range map[string]*http.Request{
		"HEAD":              req("HEAD", "http://mirror.example/pypi/simple/foo/"),
		"If-None-Match":     req("GET", "http://mirror.example/pypi/simple/foo/", "If-None-Match", `"x"`),
		"If-Modified-Since": req("GET", "http://mirror.example/pypi/simple/foo/", "If-Modified-Since", "Mon, 02 Jan 2006 15:04:05 GMT"),
		"Range":             req("GET", "http://mirror.example/pypi/simple/foo/", "Range", "bytes=0-1"),
		"unknown header":    req("GET", "http://mirror.example/pypi/simple/foo/", "X-Custom", "1"),
		"malformed Host":    req("GET", "http://mirror.example/pypi/simple/foo/"),
	} {
		if name == "malformed Host" {
			r.Host = "bad host"
		}
		if _, ok := replayKeyOf(r, ignored); ok {
			t.Errorf("%s: replayable", name)
		}
	}
}
