package proxy

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/httpx"
	"github.com/mirror-proxy/mirror-proxy/storage/local"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}
func (b *syncBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.b.String() }

// A handler that panics gets the client a 500 with a JSON error and a
// request id, is logged with its stack, and the server goes on serving;
// an aborted response (http.ErrAbortHandler) cuts the connection instead.
func TestHandlerPanic(t *testing.T) {
	store, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	s := New(Options{Store: store, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	t.Cleanup(s.Close)
	rt := s.router("/t")
	rt.Read("/boom", func(w http.ResponseWriter, r *http.Request) error { panic("kaboom") })
	rt.Read("/abort", func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Length", "10")
		w.Write([]byte("12345"))
		panic(http.ErrAbortHandler)
	})
	rt.Read("/ok", func(w http.ResponseWriter, r *http.Request) error { _, err := io.WriteString(w, "fine"); return err })
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)

	res, err := http.Get(hs.URL + "/t/boom")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusInternalServerError || !strings.Contains(string(body), `"error"`) || res.Header.Get("X-Request-Id") == "" {
		t.Errorf("panic: %d %q (X-Request-Id %q), want a 500 with a JSON error and an id", res.StatusCode, body, res.Header.Get("X-Request-Id"))
	}
	if l := logs.String(); !strings.Contains(l, "panic serving a request") || !strings.Contains(l, "kaboom") || !strings.Contains(l, "frame_test.go") {
		t.Errorf("the panic is not logged with its stack:\n%s", l)
	}

	res, err = http.Get(hs.URL + "/t/abort")
	if err == nil {
		_, err = io.ReadAll(res.Body)
		res.Body.Close()
	}
	if err == nil {
		t.Error("an aborted response was read to its end without an error")
	}
	if l := logs.String(); !strings.Contains(l, "response aborted") {
		t.Errorf("the abort is not logged:\n%s", l)
	}

	res, err = http.Get(hs.URL + "/t/ok")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || string(body) != "fine" {
		t.Errorf("after the panics: %d %q", res.StatusCode, body)
	}
}

// readFromRecorder is a ResponseWriter with ReadFrom, as h1's and
// net/http's are (their ReadFrom uses sendfile).
type readFromRecorder struct {
	*httptest.ResponseRecorder
	readFrom bool
}

func (r *readFromRecorder) ReadFrom(src io.Reader) (int64, error) {
	r.readFrom = true
	return io.Copy(r.ResponseRecorder, src)
}

// A file served with http.ServeContent reaches the server's ReadFrom
// (sendfile) through echo's response, which has none of its own, and
// echo still counts the status and bytes for the logs and metrics.
// Before, io.Copy read the file through a buffer and wrote it piece by
// piece.
func TestFileBodyReachesReadFrom(t *testing.T) {
	store, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := New(Options{Store: store, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	t.Cleanup(s.Close)
	body := bytes.Repeat([]byte("0123456789"), 100_000)
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, body, 0o644); err != nil {
		t.Fatal(err)
	}
	h := s.adapt("/f", "", "", false, nil, func(w http.ResponseWriter, r *http.Request) error {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		http.ServeContent(w, r, "f", time.Time{}, f)
		return nil
	})
	rec := &readFromRecorder{ResponseRecorder: httptest.NewRecorder()}
	c := s.e.NewContext(httptest.NewRequest(http.MethodGet, "/f", nil), rec)
	if err := h(c); err != nil {
		t.Fatal(err)
	}
	if !rec.readFrom {
		t.Error("the body did not go through the server's ReadFrom")
	}
	if !bytes.Equal(rec.Body.Bytes(), body) || rec.Code != http.StatusOK {
		t.Errorf("got %d, %d bytes", rec.Code, rec.Body.Len())
	}
	if res := c.Response(); res.Status != http.StatusOK || res.Size != int64(len(body)) || !res.Committed {
		t.Errorf("echo counted status %d, %d bytes (committed %v); want 200, %d", res.Status, res.Size, res.Committed, len(body))
	}
}

// X-Forwarded-For and -Proto are believed only from TRUSTED_PROXIES
// (loopback by default): from another peer the log names the peer, and
// URLs are written with the connection's own scheme. OPTIONS is a 405 on
// every route (echo answered it with a protected route's methods, without
// a token).
func TestForwardingHeadersFromTrustedProxiesOnly(t *testing.T) {
	for _, c := range []struct {
		trusted []netip.Prefix
		believe bool
	}{{nil, true}, {[]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, false}} {
		store, _ := local.New(t.TempDir())
		var logs syncBuffer
		s := New(Options{Store: store, TrustedProxies: c.trusted, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		rt := s.router("/t")
		rt.Read("/scheme", func(w http.ResponseWriter, r *http.Request) error {
			_, err := io.WriteString(w, httpx.RequestScheme(r))
			return err
		})
		rt.Write(http.MethodPut, "/secret", func(w http.ResponseWriter, r *http.Request) error { return nil })
		hs := httptest.NewServer(s.Handler()) // the test's client is 127.0.0.1
		req, _ := http.NewRequest("GET", hs.URL+"/t/scheme", nil)
		req.Header.Set("X-Forwarded-For", "203.0.113.7")
		req.Header.Set("X-Forwarded-Proto", "https")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if got := string(body) == "https" && strings.Contains(logs.String(), "remote=203.0.113.7"); got != c.believe {
			t.Errorf("TRUSTED_PROXIES %v: scheme %q, log %q; want the headers believed: %v", c.trusted, body, logs.String(), c.believe)
		}
		req, _ = http.NewRequest(http.MethodOptions, hs.URL+"/t/secret", nil)
		if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("OPTIONS on a protected route: %v %v, want 405", err, res.StatusCode)
		}
		hs.Close()
		s.Close()
	}
	httpx.TrustProxies(nil)
}
