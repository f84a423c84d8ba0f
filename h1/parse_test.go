package h1

import (
	"bufio"
	"bytes"
	"net/http"
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
		if got.Method != want.Method || got.RequestURI != want.RequestURI || got.URL.String() != want.URL.String() ||
			got.Host != want.Host || got.Close != want.Close || got.Proto != want.Proto ||
			!reflect.DeepEqual(got.Header, want.Header) || got.ContentLength != want.ContentLength {
			t.Fatalf("%q:\n loop:     %s %q %q host=%q close=%v %v\n net/http: %s %q %q host=%q close=%v %v", block,
				got.Method, got.RequestURI, got.URL, got.Host, got.Close, got.Header,
				want.Method, want.RequestURI, want.URL, want.Host, want.Close, want.Header)
		}
	})
}
