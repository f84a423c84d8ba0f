package cork

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
)

type countingListener struct {
	net.Listener
	writes *atomic.Int32
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	return countingConn{c, l.writes}, err
}

type countingConn struct {
	net.Conn
	writes *atomic.Int32
}

func (c countingConn) Write(p []byte) (int, error) { c.writes.Add(1); return c.Conn.Write(p) }

// A warm document larger than net/http's 4 KB buffer leaves in one write,
// intact, and the connection stays usable for the next request.
func TestCorkedResponseIsOneWrite(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 700) // 11.2 KB
	var writes atomic.Int32
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	srv := &http.Server{ConnContext: ConnContext, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "11200")
		writeWhole(Wrap(w, r), body)
	})}
	go srv.Serve(Listener{countingListener{l, &writes}})
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
	for i := 0; i < 3; i++ {
		before := writes.Load()
		resp, err := client.Get("http://" + l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("request %d: body differs or failed: %v", i, err)
		}
		if n := writes.Load() - before; n != 1 {
			t.Errorf("request %d: the response took %d writes, want 1", i, n)
		}
	}
}

// A corked body several times net/http's buffer arrives intact over TCP,
// request after request on one connection.
func TestCorkedLargeBodyIntact(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 2300) // 36.8 KB
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	srv := &http.Server{ConnContext: ConnContext, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "36800")
		writeWhole(Wrap(w, r), body)
	})}
	go srv.Serve(Listener{l})
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
	for i := 0; i < 5; i++ {
		resp, err := client.Get("http://" + l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("request %d: body differs (%d bytes) or failed: %v", i, len(got), err)
		}
	}
}

// writeWhole is what the server's response writer does with a complete
// body: hold it back when it can, then write it.
func writeWhole(w http.ResponseWriter, body []byte) {
	if h, ok := w.(Holder); ok {
		if release := h.Hold(len(body)); release != nil {
			defer release()
		}
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}
