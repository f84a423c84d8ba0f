package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/storage/local"
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

type brokenListener struct{ net.Listener }

var errBroken = errors.New("listener broken")

func (brokenListener) Accept() (net.Conn, error) { return nil, errBroken }

// A listener that fails for good ends Serve with its error, for either
// server, after the core is stopped (Serve does not return before).
func TestServeEndsOnAListenerError(t *testing.T) {
	for _, std := range []bool{false, true} {
		store, _ := local.New(t.TempDir())
		s := New(Options{Store: store, StdHTTP: std, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		done := make(chan error, 1)
		go func() { done <- s.Serve(context.Background(), brokenListener{l}, time.Second) }()
		select {
		case err := <-done:
			if !errors.Is(err, errBroken) {
				t.Errorf("StdHTTP %v: Serve returned %v, want the listener's error", std, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("StdHTTP %v: Serve did not return on a broken listener", std)
		}
		l.Close()
	}
}
