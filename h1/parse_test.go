package h1

import (
	"bufio"
	"bytes"
	"net/http"
	"net/url"
	"reflect"
	"testing"
)

// Whatever request the loop takes, net/http reads the same way: method,
// target, URL, Host, fields and Connection: close. (The loop may leave to
// net/http requests that net/http would take; never the reverse.)
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"HEAD /a/b?c=d&e HTTP/1.1\r\nhost: example.com:8080\r\naccept-encoding: gzip\r\nX-A: 1\r\nx-a: 2\r\n\r\n",
		"GET /%2F..%2f/x HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, close\r\nPragma: no-cache\r\n\r\n",
		"GET /x HTTP/1.1\r\nHost: x\r\nUser-Agent:   pip/23.0 \t\r\nIf-None-Match: \"a\"\r\n\r\n",
		"GET //x HTTP/1.1\r\nHost: [::1]:80\r\nfoo_bar: é\r\n\r\n",
		"GET /x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
		"GET /x#frag HTTP/1.1\r\nHost: x\r\nX:\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		end := bytes.Index(raw, crlfcrlf)
		if end < 0 || bareLF(raw[:end+4]) {
			return
		}
		block := raw[:end+4]
		got := new(http.Request)
		ok := parseRequest(block, got)
		if !ok {
			return
		}
		want, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(block)))
		if err != nil {
			t.Fatalf("taken by the loop, refused by net/http (%v): %q", err, block)
		}
		if got.Method != want.Method || got.RequestURI != want.RequestURI || *got.URL != *want.URL ||
			got.Host != want.Host || got.Close != want.Close || got.Proto != want.Proto ||
			!reflect.DeepEqual(got.Header, want.Header) || got.ContentLength != want.ContentLength {
			t.Fatalf("%q:\n loop:     %s %q %q host=%q close=%v %v\n net/http: %s %q %q host=%q close=%v %v", block,
				got.Method, got.RequestURI, got.URL, got.Host, got.Close, got.Header,
				want.Method, want.RequestURI, want.URL, want.Host, want.Close, want.Header)
		}
	})
}

// parseTarget's shortcut gives what url.ParseRequestURI gives.
func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"/", "/a/b", "/a/b/", "/a?", "/a??", "/a?b=c&d", "/a?#x", "//x/y", "/p2/vendor/pkg~dev.json",
		"/simple/foo-bar_baz.qux/", "/a%2Fb", "/a b", "/é", "/a?é", "/a?b c", "/x#frag", "/a;b", "/@scope/pkg", "/a?\x7f", "/a/../b", "/a/./"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		got, gerr := parseTarget(target)
		want, werr := url.ParseRequestURI(target)
		if (gerr != nil) != (werr != nil) {
			t.Fatalf("%q: error %v, url.ParseRequestURI's %v", target, gerr, werr)
		}
		if gerr == nil && *got != *want {
			t.Fatalf("%q: %#v, url.ParseRequestURI's %#v", target, *got, *want)
		}
	})
}

func BenchmarkParseRequest(b *testing.B) {
	block := []byte("GET /npm/@scope/pkg-name HTTP/1.1\r\nHost: mirror.example:8080\r\nAccept-Encoding: gzip\r\n" +
		"Accept: application/vnd.npm.install-v1+json\r\nUser-Agent: npm/10.8.2 node/v20.20.2 linux x64\r\n\r\n")
	b.ReportAllocs()
	var req http.Request
	for b.Loop() {
		if !parseRequest(block, &req) {
			b.Fatal("not taken")
		}
	}
}
