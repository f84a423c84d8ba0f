package proxy

import (
	"strings"
	"testing"
)

func TestValidHostAndRequestID(t *testing.T) {
	for h, want := range map[string]bool{"example.com": true, "example.com:8080": true, "127.0.0.1:80": true, "[::1]:8080": true,
		"[::1]": true, "my_host": true, "a b": false, "x:": false, ":80": false, "x:8o": false, "[zz]": false, "[::1]x": false,
		"x:1234567": false, strings.Repeat("h", 254): false} {
		if got := validHost(h); got != want {
			t.Errorf("validHost(%q) = %v, want %v", h, got, want)
		}
	}
	for id, want := range map[string]bool{"abc-123": true, "trace/42=": true, "": false, "a b": false, "<x>": false, strings.Repeat("x", 129): false} {
		if got := validRequestID(id); got != want {
			t.Errorf("validRequestID(%q) = %v, want %v", id, got, want)
		}
	}
}
