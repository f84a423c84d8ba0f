package h1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// start runs h on an h1.Server (with net/http as its fallback) and returns
// its address and the server.
func start(t testing.TB, h http.Handler, opts ...func(*Server)) (string, *Server) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Handler: h, Fallback: &http.Server{Handler: h}}
	for _, o := range opts {
		o(s)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		_ = s.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return l.Addr().String(), s
}

// fastHeader marks the responses written by the loop (not net/http).
func fastHeader(w http.ResponseWriter) {
	if _, ok := w.(*response); ok {
		w.Header().Set("X-Fast", "1")
	}
}

type exchange struct {
	status  int
	header  http.Header
	body    string
	bodyErr error
}

// roundTrip writes raw to a new connection and reads n responses.
func roundTrip(t *testing.T, addr, raw string, n int, method string) []exchange {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var out []exchange
	for range n {
		res, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatalf("response %d to %q: %v", len(out)+1, raw, err)
		}
		b, err := io.ReadAll(res.Body)
		res.Header.Del("Date")
		out = append(out, exchange{res.StatusCode, res.Header, string(b), err})
	}
	return out
}

func TestKeepAliveAndPipelining(t *testing.T) {
	addr, _ := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fastHeader(w)
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, r.Header.Get("X-N"))
	}))
	raw := ""
	for i := range 3 {
		raw += fmt.Sprintf("GET /p%d HTTP/1.1\r\nHost: x\r\nX-N: %d\r\n\r\n", i, i)
	}
	for i, ex := range roundTrip(t, addr, raw, 3, "GET") {
		if want := fmt.Sprintf("GET /p%d %d", i, i); ex.body != want || ex.header.Get("X-Fast") != "1" {
			t.Errorf("response %d: %q %v, want %q from the loop", i, ex.body, ex.header, want)
		}
		if ex.header.Get("Content-Length") != fmt.Sprint(len(ex.body)) {
			t.Errorf("Content-Length %q for %q", ex.header.Get("Content-Length"), ex.body)
		}
	}
}

// Everything the loop does not take reaches net/http unchanged, on the
// same connection, and gets net/http's answer.
func TestFallbackGetsEverythingElse(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fastHeader(w)
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s body=%q", r.Method, r.Proto, r.URL.Path, b)
	})
	addr, _ := start(t, h)
	std := httptest.NewServer(h)
	defer std.Close()
	big := strings.Repeat("a", readBufSize)
	for _, tc := range []struct {
		name, raw string
		n         int
	}{
		{"POST with a body, then a GET", "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /after HTTP/1.1\r\nHost: x\r\n\r\n", 2},
		{"chunked GET", "GET /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 1},
		{"HTTP/1.0", "GET /old HTTP/1.0\r\n\r\n", 1},
		{"lower-case method", "get /x HTTP/1.1\r\nHost: x\r\n\r\n", 1},
		{"no Host", "GET /x HTTP/1.1\r\n\r\n", 1},
		{"two Hosts", "GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 1},
		{"space before colon", "GET /x HTTP/1.1\r\nHost : a\r\n\r\n", 1},
		{"folded field", "GET /x HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", 1},
		{"control byte in a value", "GET /x HTTP/1.1\r\nHost: a\r\nX-A: b\x01c\r\n\r\n", 1},
		{"bare LF", "GET /x HTTP/1.1\nHost: a\n\n", 1},
		{"absolute form", "GET http://other.example/x HTTP/1.1\r\nHost: a\r\n\r\n", 1},
		{"header block over the buffer", "GET /x HTTP/1.1\r\nHost: a\r\nX-Big: " + big + "\r\n\r\n", 1},
		{"Expect", "GET /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n", 1},
		{"a GET after a GET the loop took", "GET /one HTTP/1.1\r\nHost: a\r\n\r\nGET /two HTTP/1.0\r\n\r\n", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := roundTrip(t, addr, tc.raw, tc.n, "GET")
			want := roundTrip(t, strings.TrimPrefix(std.URL, "http://"), tc.raw, tc.n, "GET")
			for i := range want {
				fast := got[i].header.Get("X-Fast") == "1"
				got[i].header.Del("X-Fast")
				if tc.name == "a GET after a GET the loop took" && i == 0 {
					if !fast {
						t.Errorf("first request not served by the loop")
					}
				} else if fast {
					t.Errorf("response %d came from the loop", i)
				}
				if got[i].status != want[i].status || got[i].body != want[i].body {
					t.Errorf("response %d: %d %q, net/http alone: %d %q", i, got[i].status, got[i].body, want[i].status, want[i].body)
				}
			}
		})
	}
}

// The loop's responses read the same as net/http's for the same handler:
// status, headers (but Date) and body, and whether the connection stays.
func TestResponsesAsNetHTTPWrites(t *testing.T) {
	large := strings.Repeat("x", 3000*(bodyBufLimit/1000))
	handlers := map[string]http.HandlerFunc{
		"declared length": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Length", "5")
			io.WriteString(w, "hello")
		},
		"short body counted": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "hel")
			io.WriteString(w, "lo")
		},
		"long body chunked": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			for i := 0; i < len(large); i += 1000 {
				io.WriteString(w, large[i:i+1000])
			}
		},
		"flush then more": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "one")
			w.(http.Flusher).Flush()
			io.WriteString(w, "two")
		},
		"sniffed type": func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "<html><body>hi</body></html>")
		},
		"nothing written": func(w http.ResponseWriter, r *http.Request) {},
		"not modified": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("ETag", `"a"`)
			w.WriteHeader(http.StatusNotModified)
			io.WriteString(w, "refused")
		},
		"no content": func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) },
		"not found with a JSON body": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"error":"not found"}`)
		},
		"handler closes": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			io.WriteString(w, "bye")
		},
		"newline in a value": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Echo", "a\r\nX-Injected: 1")
			io.WriteString(w, "ok")
		},
		"no Date": func(w http.ResponseWriter, r *http.Request) {
			w.Header()["Date"] = nil
			io.WriteString(w, "ok")
		},
	}
	for name, h := range handlers {
		mux := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fastHeader(w); h(w, r) })
		addr, _ := start(t, mux)
		std := httptest.NewServer(mux)
		for _, method := range []string{"GET", "HEAD"} {
			t.Run(name+" "+method, func(t *testing.T) {
				raw := method + " /x HTTP/1.1\r\nHost: x\r\n\r\n" + method + " /y HTTP/1.1\r\nHost: x\r\n\r\n"
				n := 2
				if name == "handler closes" {
					n = 1
				}
				got := roundTrip(t, addr, raw, n, method)
				want := roundTrip(t, strings.TrimPrefix(std.URL, "http://"), raw, n, method)
				for i := range want {
					if got[i].header.Get("X-Fast") != "1" {
						t.Fatalf("not served by the loop")
					}
					got[i].header.Del("X-Fast")
					if g, w := fmt.Sprint(got[i].status, got[i].header, got[i].body), fmt.Sprint(want[i].status, want[i].header, want[i].body); g != w {
						t.Errorf("response %d:\n loop:     %s\n net/http: %s", i, g, w)
					}
				}
			})
		}
		std.Close()
	}
}

func TestWritePastTheLengthFails(t *testing.T) {
	errc := make(chan error, 1)
	addr, _ := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "2")
		_, err := io.WriteString(w, "toolong")
		errc <- err
		io.WriteString(w, "ok")
	}))
	ex := roundTrip(t, addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 1, "GET")
	if err := <-errc; err != http.ErrContentLength {
		t.Errorf("write past the length: %v", err)
	}
	if ex[0].body != "ok" {
		t.Errorf("body %q", ex[0].body)
	}
}

// A body left short of its Content-Length ends the connection: the client
// sees the cut instead of waiting or taking the next response as body.
func TestShortBodyEndsTheConnection(t *testing.T) {
	addr, _ := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "12345")
	}))
	res, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if b, err := io.ReadAll(res.Body); err == nil {
		t.Fatalf("read %q in full", b)
	}
}

// A handler that aborts (http.ErrAbortHandler) after part of a body cuts
// the connection: the client never takes a truncated body as complete.
func TestAbortCutsTheResponse(t *testing.T) {
	for _, declared := range []bool{true, false} {
		addr, _ := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if declared {
				w.Header().Set("Content-Length", "100000")
			}
			w.Write(bytes.Repeat([]byte("a"), 40000))
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}))
		res, err := http.Get("http://" + addr + "/")
		if err != nil {
			continue // cut before the headers: fine as well
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err == nil {
			t.Errorf("declared=%v: read %d bytes without an error", declared, len(b))
		}
	}
}

// waitCancelled waits up to 10 s for the request's context to end and
// says after how long it did (-1: it did not).
func waitCancelled(r *http.Request, cancelled chan<- time.Duration) {
	start := time.Now()
	select {
	case <-r.Context().Done():
		cancelled <- time.Since(start)
	case <-time.After(10 * time.Second):
		cancelled <- -1
	}
}

// A client that hangs up while a handler runs long cancels the request's
// context, as with net/http (the proxy stops waiting for it).
func TestHangUpCancelsTheRequest(t *testing.T) {
	cancelled := make(chan time.Duration, 1)
	addr, _ := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { waitCancelled(r, cancelled) }))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(200 * time.Millisecond)
	c.Close()
	if d := <-cancelled; d < 0 {
		t.Fatal("the request's context was not cancelled")
	}
}

// The watch's timer is set once for a run of requests, not per request: a
// slow request that follows fast ones on the same connection (across the
// timer's firings) is still watched, and a hang-up cancels it.
func TestHangUpAfterFastRequests(t *testing.T) {
	cancelled := make(chan time.Duration, 1)
	addr, _ := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/slow" {
			io.WriteString(w, "fast")
			return
		}
		waitCancelled(r, cancelled)
	}))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	deadline := time.Now().Add(watchAfter * 3 / 2)
	for n := 0; n < 3 || time.Now().Before(deadline); n++ { // requests across the timer's first firing
		io.WriteString(c, "GET /fast HTTP/1.1\r\nHost: x\r\n\r\n")
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		time.Sleep(watchAfter / 10)
	}
	io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(2 * watchAfter)
	c.Close()
	select {
	case d := <-cancelled:
		if d < 0 {
			t.Fatal("the request's context was not cancelled")
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the handler never returned")
	}
}

// A request pipelined behind a slow one is read by the watch and still
// served, in order.
func TestPipelinedBehindASlowRequest(t *testing.T) {
	addr, _ := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(3 * watchAfter)
			if r.Context().Err() != nil {
				t.Error("cancelled by a pipelined request")
			}
		}
		io.WriteString(w, r.URL.Path)
	}))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(2 * watchAfter)
	io.WriteString(c, "GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	for _, want := range []string{"/slow", "/next"} {
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		if string(b) != want {
			t.Errorf("got %q, want %q", b, want)
		}
	}
}

// Files go out with their declared length (sendfile underneath), ranges too.
func TestServeContentFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	data := bytes.Repeat([]byte("0123456789"), 100000)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	addr, _ := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(p)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		http.ServeContent(w, r, "f.bin", time.Time{}, f)
	}))
	for _, tc := range []struct{ rng, want string }{{"", string(data)}, {"bytes=5-14", string(data[5:15])}} {
		req, _ := http.NewRequest("GET", "http://"+addr+"/f", nil)
		if tc.rng != "" {
			req.Header.Set("Range", tc.rng)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil || string(b) != tc.want {
			t.Errorf("range %q: %d bytes, %v", tc.rng, len(b), err)
		}
	}
}

// Shutdown closes idle connections, lets a request in progress finish
// (with Connection: close), and Serve returns.
func TestShutdown(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(entered)
			<-release
		}
		io.WriteString(w, "done")
	})
	s := &Server{Handler: h, Fallback: &http.Server{Handler: h}}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	addr := l.Addr().String()

	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, addr, "GET /warm HTTP/1.1\r\nHost: x\r\n\r\n", 1, "GET")
	io.WriteString(idle, "GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
	ibr := bufio.NewReader(idle)
	if res, err := http.ReadResponse(ibr, nil); err != nil {
		t.Fatal(err)
	} else {
		io.ReadAll(res.Body)
	}

	busy, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	<-entered
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()

	_ = idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := ibr.ReadByte(); err != io.EOF {
		t.Errorf("idle connection: %v, want EOF", err)
	}
	close(release)
	res, err := http.ReadResponse(bufio.NewReader(busy), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	if string(b) != "done" || !res.Close {
		t.Errorf("busy connection: %q, close=%v", b, res.Close)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve: %v", err)
	}
}

func TestIdleTimeout(t *testing.T) {
	addr, _ := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}),
		func(s *Server) { s.IdleTimeout = 100 * time.Millisecond })
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("idle connection: %v, want EOF", err)
	}
}

// BenchmarkWarmGet: one keep-alive client, a 10 KB body from memory.
func BenchmarkWarmGet(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 10<<10)
	cl := fmt.Sprint(len(body))
	addr, _ := start(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Length"] = []string{cl}
		w.Header()["Content-Type"] = []string{"application/json"}
		w.Write(body)
	}))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	req := []byte("GET /p2/acme/foo.json HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nUser-Agent: bench\r\n\r\n")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
	}
}

// The idle timeout counts from the end of the last request, also when
// requests follow each other closer than the deadline is reset.
func TestIdleTimeoutFromLastRequest(t *testing.T) {
	const idle = 300 * time.Millisecond
	addr, _ := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		func(s *Server) { s.IdleTimeout = idle })
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	var last time.Time
	for range 5 {
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		last = time.Now()
		time.Sleep(5 * time.Millisecond)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: %v, want EOF", err)
	}
	if d := time.Since(last); d < idle {
		t.Errorf("closed %v after the last request, before the idle timeout (%v)", d, idle)
	}
}

// preparedServer answers /prepared/* from ServePrepared and everything
// else from ServeHTTP; /prepared/panic panics.
type preparedServer struct {
	head     []byte
	body     []byte
	handled  chan context.Context // the contexts ServeHTTP got
	prepared chan string          // the paths ServePrepared served
}

func (p *preparedServer) ServePrepared(w http.ResponseWriter, r *http.Request) bool {
	if !strings.HasPrefix(r.URL.Path, "/prepared/") {
		return false
	}
	if r.URL.Path == "/prepared/panic" {
		panic("prepared")
	}
	if r.Context() != context.Background() {
		panic("a prepared request has a context of its own")
	}
	w.Header()["X-Path"] = []string{r.URL.Path}
	p.prepared <- r.URL.Path
	if err := w.(*response).WritePrepared(p.head, p.body); err != nil {
		panic(http.ErrAbortHandler)
	}
	return true
}

func (p *preparedServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.handled <- r.Context()
	w.Header().Set("X-Path", r.URL.Path)
	_, _ = io.WriteString(w, "handled")
}

// A PreparedHandler answers what it has prepared without a context or a
// request of its own; what it declines runs in ServeHTTP as usual (a
// request context that ends with the handler), on the same connection,
// pipelined or not; a panic in ServePrepared cuts the connection.
func TestPreparedHandler(t *testing.T) {
	body := []byte(`{"prepared":true}`)
	p := &preparedServer{
		head:     AppendHeader(nil, http.Header{"Content-Length": {fmt.Sprint(len(body))}, "Content-Type": {"application/json"}}),
		body:     body,
		handled:  make(chan context.Context, 10),
		prepared: make(chan string, 10),
	}
	addr, _ := start(t, p, func(s *Server) { s.Logger = slog.New(slog.DiscardHandler) })
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "GET /prepared/a HTTP/1.1\r\nHost: x\r\n\r\nGET /other HTTP/1.1\r\nHost: x\r\n\r\nGET /prepared/b HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	for _, want := range []struct{ path, body string }{{"/prepared/a", string(body)}, {"/other", "handled"}, {"/prepared/b", string(body)}} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || resp.Header.Get("X-Path") != want.path || string(got) != want.body {
			t.Errorf("%s: %d %q %q", want.path, resp.StatusCode, resp.Header.Get("X-Path"), got)
		}
	}
	if a, b := <-p.prepared, <-p.prepared; a != "/prepared/a" || b != "/prepared/b" {
		t.Errorf("prepared: %s, %s", a, b)
	}
	select {
	case ctx := <-p.handled:
		if ctx.Err() == nil {
			t.Error("the handler's request context did not end with it")
		}
	default:
		t.Error("ServeHTTP did not run")
	}

	_, _ = io.WriteString(c, "GET /prepared/panic HTTP/1.1\r\nHost: x\r\n\r\n")
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if resp, err := http.ReadResponse(br, nil); err == nil {
		t.Errorf("a panic in ServePrepared: got a response, %d", resp.StatusCode)
	}
}

// A new connection that sends nothing is closed after the header timeout,
// as net/http closes it (not kept for the idle timeout).
func TestSilentNewConnectionHasTheHeaderTimeout(t *testing.T) {
	addr, _ := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}),
		func(s *Server) { s.IdleTimeout, s.ReadHeaderTimeout = time.Hour, 200*time.Millisecond })
	for _, first := range []string{"", "GET / HTTP/1.1\r\n"} { // nothing; a header block never finished
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, first)
		start := time.Now()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 1))
		c.Close()
		if err != io.EOF || time.Since(start) > 2*time.Second {
			t.Errorf("silent connection (sent %q): %v after %v, want EOF after the header timeout", first, err, time.Since(start))
		}
	}
}

// flakyListener fails its first Accepts as a process out of file
// descriptors does (EMFILE, a Temporary error), then accepts.
type flakyListener struct {
	net.Listener
	fails int
	err   error
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.fails > 0 {
		l.fails--
		return nil, l.err
	}
	return l.Listener.Accept()
}

// Out of file descriptors, the loop backs off and accepts again (net/http
// does); a permanent error ends Serve with it.
func TestAcceptErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	emfile := &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	fl := &flakyListener{Listener: l, fails: 3, err: emfile}
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		Fallback: &http.Server{}}
	done := make(chan error, 1)
	go func() { done <- s.Serve(fl) }()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + l.Addr().String() + "/")
	if err != nil {
		s.Close()
		t.Fatalf("after EMFILE: %v (Serve: %v)", err, <-done)
	}
	resp.Body.Close()
	s.Close()
	if err := <-done; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve: %v", err)
	}

	l2, _ := net.Listen("tcp", "127.0.0.1:0")
	defer l2.Close()
	permanent := errors.New("listener broken")
	s2 := &Server{Handler: http.NotFoundHandler(), Fallback: &http.Server{}}
	if err := s2.Serve(&flakyListener{Listener: l2, fails: 1, err: permanent}); !errors.Is(err, permanent) {
		t.Errorf("Serve on a broken listener: %v, want its error", err)
	}
}
