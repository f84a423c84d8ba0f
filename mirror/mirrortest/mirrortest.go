// Package mirrortest is the contract every ecosystem keeps, checked
// through that ecosystem's own routes with its fake upstream (as
// storage/storagetest is for storage backends): warm hits make no storage
// call, metadata is served stale when the upstream fails and an upstream
// failure is never a 404, a file whose bytes do not match its digest is
// never stored and never completes cleanly, a stored file is served from
// storage alone (HEAD and Range included) after a restart with the
// upstream down, and client input never escapes its key prefix.
package mirrortest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/fetch"
	"github.com/mirror-proxy/mirror-proxy/mirror"
	"github.com/mirror-proxy/mirror-proxy/proxy"
	"github.com/mirror-proxy/mirror-proxy/storage"
	"github.com/mirror-proxy/mirror-proxy/storage/local"
)

// Fixture describes one ecosystem for the contract.
type Fixture struct {
	// Type is the mirror type; the mirror is mounted at /m.
	Type string
	// Start starts a fresh fake upstream and returns its URL for the
	// mirror's url, a function that stops it (the upstream is then down)
	// and one that corrupts (on) or restores the bytes of File.
	Start func(t *testing.T) (url string, stop func(), corrupt func(on bool))
	// Options, when set, are the mirror's type-specific settings (as
	// MIRRORS gives them), read after Start.
	Options func() map[string]any
	// Meta is a metadata path under the mount that the upstream has
	// (with Header sent), and Missing one it never had.
	Meta, Missing string
	Header        []string
	// Forms are requests (a path under the mount, then header name and
	// value pairs) of distinct (name, form) pairs that a key made of a
	// client-supplied name plus a suffix or form would confuse (npm's
	// full packument of "x.abbreviated" and abbreviated one of "x"); the
	// upstream has each. None may share a stored key with another, and
	// each answer stays its own however they are interleaved.
	Forms [][]string
	// File finds, from the mirror at base ("http://host/m"), the URL of
	// a file of at least 1 MiB the upstream has, and returns its bytes.
	File func(t *testing.T, base string) (url string, want []byte)
}

// countingStore counts every call that reaches storage, and keeps the
// keys written while written is not nil.
type countingStore struct {
	storage.Store
	calls   atomic.Int64
	mu      sync.Mutex
	written map[string]bool
	ops     []string // "op key", in order
}

func (s *countingStore) count(op, key string) {
	s.calls.Add(1)
	s.mu.Lock()
	s.ops = append(s.ops, op+" "+key)
	s.mu.Unlock()
}

// opsSince are the calls after the first n.
func (s *countingStore) opsSince(n int64) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ops[min(int(n), len(s.ops)):]...)
}

func (s *countingStore) record() (stop func() map[string]bool) {
	s.mu.Lock()
	s.written = map[string]bool{}
	s.mu.Unlock()
	return func() map[string]bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		w := s.written
		s.written = nil
		return w
	}
}

func (s *countingStore) Get(ctx context.Context, key string, rng storage.Range) (io.ReadCloser, storage.Info, error) {
	s.count("get", key)
	return s.Store.Get(ctx, key, rng)
}

func (s *countingStore) Stat(ctx context.Context, key string) (storage.Info, error) {
	s.count("stat", key)
	return s.Store.Stat(ctx, key)
}

func (s *countingStore) Put(ctx context.Context, key string, r io.Reader, o storage.PutOptions) error {
	s.count("put", key)
	s.mu.Lock()
	if s.written != nil {
		s.written[key] = true
	}
	s.mu.Unlock()
	return s.Store.Put(ctx, key, r, o)
}

var _ storage.Store = (*countingStore)(nil)

type env struct {
	store *countingStore
	base  string
	opts  proxy.Options
}

func start(t *testing.T, st *countingStore, f Fixture, url string) *env {
	return startTTL(t, st, f, url, time.Hour)
}

func startTTL(t *testing.T, st *countingStore, f Fixture, url string, ttl time.Duration) *env {
	var options map[string]json.RawMessage
	if f.Options != nil {
		options = map[string]json.RawMessage{}
		for k, v := range f.Options() {
			options[k], _ = json.Marshal(v)
		}
	}
	opts := proxy.Options{Store: st, MetaPrefix: "mirror-meta", DistPrefix: "mirror-dist",
		Mirrors:         []proxy.Mirror{{Name: "m", Type: f.Type, URL: url, TTL: ttl, NotFoundTTL: time.Second, Options: options}},
		UpstreamTimeout: 3 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		// Failures not remembered: the contract checks that a healed
		// upstream is fetched again.
		VerifyFailureTTL: fetch.Off, StdHTTP: StdHTTP()}
	return &env{store: st, base: ServeProxy(t, proxy.New(opts)) + "/m", opts: opts}
}

// StdHTTP reports whether tests run the proxy under net/http alone
// (HTTP_SERVER=std in the test's environment, as the binary's setting)
// rather than h1's loop in front of it (the default). ./scripts/test runs
// this contract and servertest both ways.
func StdHTTP() bool { return os.Getenv("HTTP_SERVER") == "std" }

// ServeProxy runs srv as the binary does (its own Serve: the HTTP/1.1 loop
// of package h1, where warm documents are replayed, in front of net/http)
// on a free loopback port until the test ends, and returns its base URL.
func ServeProxy(t testing.TB, srv *proxy.Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, l, time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Error(err)
		}
		srv.Close()
	})
	return "http://" + l.Addr().String()
}

// Serve runs a proxy with the one mirror m (named m.Name) on fresh local
// storage, and returns the mirror's base URL ("http://host/<name>").
func Serve(t *testing.T, m proxy.Mirror) string {
	t.Helper()
	st, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return ServeOn(t, st, m)
}

// ServeOn is Serve on the given storage (several proxies, or one after
// another, on one store).
func ServeOn(t *testing.T, st storage.Store, m proxy.Mirror) string {
	t.Helper()
	if m.TTL == 0 {
		m.TTL = time.Minute
	}
	if m.NotFoundTTL == 0 {
		m.NotFoundTTL = time.Second
	}
	opts := proxy.Options{Store: st, MetaPrefix: "mirror-meta", DistPrefix: "mirror-dist", Mirrors: []proxy.Mirror{m},
		UpstreamTimeout: 5 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), StdHTTP: StdHTTP()}
	if m.Hosted {
		// Uploads need a token (Do sends it); reads stay open.
		opts.Mirrors[0].Public = true
		opts.Tokens = []proxy.Token{{Name: "test", SHA256: sha256.Sum256([]byte(WriteToken)), Read: true, Write: true}}
	}
	return ServeProxy(t, proxy.New(opts)) + "/" + m.Name
}

// Get does a request and returns the status, headers and body; a body
// cut off mid-transfer is reported in err.
func Get(t *testing.T, url string, hdr ...string) (int, http.Header, []byte, error) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if strings.HasPrefix(url, "HEAD ") {
		req, _ = http.NewRequest(http.MethodHead, strings.TrimPrefix(url, "HEAD "), nil)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b, err
}

func distKeys(st storage.Store) []string {
	var keys []string
	_ = st.List(context.Background(), "mirror-dist/", func(i storage.Info) error { keys = append(keys, i.Key); return nil })
	return keys
}

// Run checks the contract for f.
func Run(t *testing.T, f Fixture) {
	t.Run("the status page has a client snippet pointing at the mirror", func(t *testing.T) {
		typ, ok := mirror.Lookup(f.Type)
		if !ok || typ.Client == nil {
			t.Fatalf("type %s has no Client snippet (mirror.Type.Client)", f.Type)
		}
		if s := typ.Client("https://packages.example.com/m"); !strings.Contains(s, "https://packages.example.com/m") {
			t.Errorf("the snippet does not name the mirror's URL:\n%s", s)
		}
	})
	t.Run("warm hits make no storage call", func(t *testing.T) {
		url, _, _ := f.Start(t)
		lst, _ := local.New(t.TempDir())
		e := start(t, &countingStore{Store: lst}, f, url)
		code, first, want, _ := Get(t, e.base+f.Meta, f.Header...)
		if code != 200 {
			t.Fatalf("%s: %d %s", f.Meta, code, want)
		}
		before := e.store.calls.Load()
		// Warm answers (replayed ones among them, where the ecosystem
		// marks its documents replayable) are the first one's.
		for i := range 20 {
			code, h, b, err := Get(t, e.base+f.Meta, f.Header...)
			if code != 200 || err != nil || !bytes.Equal(b, want) {
				t.Fatalf("warm request %d: %d, %d bytes (%v); want 200 and the first answer's %d bytes", i, code, len(b), err, len(want))
			}
			for _, k := range []string{"Content-Type", "Etag", "Last-Modified", "Cache-Control", "Vary"} {
				if h.Get(k) != first.Get(k) {
					t.Errorf("warm request %d: %s %q, the first answer's %q", i, k, h.Get(k), first.Get(k))
				}
			}
		}
		if n := e.store.calls.Load() - before; n != 0 {
			t.Errorf("20 warm requests of %s made %d storage calls", f.Meta, n)
		}
	})

	t.Run("upstream down: stale metadata, never a 404", func(t *testing.T) {
		url, stop, _ := f.Start(t)
		lst, _ := local.New(t.TempDir())
		e := start(t, &countingStore{Store: lst}, f, url)
		_, _, want, _ := Get(t, e.base+f.Meta, f.Header...)
		stop()
		// A fresh replica (memory empty) whose copy in storage has expired:
		// it must ask the upstream, fail, and serve the stored copy stale.
		e2 := startTTL(t, e.store, f, url, time.Millisecond)
		time.Sleep(5 * time.Millisecond)
		code, h, b, _ := Get(t, e2.base+f.Meta, f.Header...)
		if code != 200 || len(b) != len(want) || h.Get("X-Mirror-Stale") != "true" {
			t.Errorf("expired metadata with the upstream down: %d, %d bytes (want %d), X-Mirror-Stale %q", code, len(b), len(want), h.Get("X-Mirror-Stale"))
		}
		if code, _, b, _ := Get(t, e2.base+f.Missing, f.Header...); code < 500 {
			t.Errorf("never-seen metadata with the upstream down: %d %s, want 5xx", code, b)
		}
	})

	t.Run("a cold file costs one lookup and one write; a stored one, one read", func(t *testing.T) {
		url, _, _ := f.Start(t)
		lst, _ := local.New(t.TempDir())
		e := start(t, &countingStore{Store: lst}, f, url)
		u, want := f.File(t, e.base)
		before := e.store.calls.Load()
		if code, _, b, _ := Get(t, u); code != 200 || string(b) != string(want) {
			t.Fatalf("cold file: %d, %d bytes", code, len(b))
		}
		deadline := time.Now().Add(5 * time.Second)
		for len(distKeys(lst)) == 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond) // the commit follows the response
		}
		// The file: one lookup, one write. Metadata the resolver needs
		// (a form the client did not ask for, such as CRAN's PACKAGES.gz):
		// at most one lookup and one write per document.
		ops := e.store.opsSince(before)
		var file []string
		perKey := map[string]int{}
		for _, op := range ops {
			_, key, _ := strings.Cut(op, " ")
			if strings.HasPrefix(key, "mirror-dist/") {
				file = append(file, op)
			} else if perKey[key]++; perKey[key] > 2 {
				t.Errorf("%s asked of storage more than a lookup and a write: %q", key, ops)
			}
		}
		if len(file) != 2 || !strings.HasPrefix(file[0], "get ") || !strings.HasPrefix(file[1], "put ") {
			t.Errorf("a cold file made the storage calls %q, want a lookup then a write", file)
		}
		e2 := start(t, e.store, f, url) // a fresh replica: nothing in memory or on disk
		before = e.store.calls.Load()
		if code, _, b, _ := Get(t, strings.Replace(u, e.base, e2.base, 1)); code != 200 || string(b) != string(want) {
			t.Fatalf("stored file: %d, %d bytes", code, len(b))
		}
		if ops := e.store.opsSince(before); len(ops) != 1 || !strings.HasPrefix(ops[0], "get mirror-dist/") {
			t.Errorf("a stored file made the storage calls %q, want one read", ops)
		}
	})

	t.Run("a corrupt file is never stored, never completes", func(t *testing.T) {
		url, _, corrupt := f.Start(t)
		lst, _ := local.New(t.TempDir())
		e := start(t, &countingStore{Store: lst}, f, url)
		u, want := f.File(t, e.base)
		corrupt(true)
		// A cut connection, even before the status line, is a fine answer.
		if resp, err := http.Get(u); err == nil {
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && err == nil && len(b) == len(want) {
				t.Errorf("a corrupt file completed cleanly (%d bytes)", len(b))
			}
		}
		time.Sleep(100 * time.Millisecond)
		if keys := distKeys(lst); len(keys) != 0 {
			t.Errorf("a corrupt file was stored: %v", keys)
		}
		corrupt(false)
		if code, _, b, err := Get(t, u); code != 200 || err != nil || string(b) != string(want) {
			t.Errorf("after the upstream healed: %d %v, %d bytes", code, err, len(b))
		}
	})

	t.Run("a stored file is served from storage after a restart", func(t *testing.T) {
		url, stop, _ := f.Start(t)
		lst, _ := local.New(t.TempDir())
		e := start(t, &countingStore{Store: lst}, f, url)
		u, want := f.File(t, e.base)
		code, cold, b, _ := Get(t, u)
		if code != 200 || string(b) != string(want) {
			if code != 200 {
				t.Fatalf("cold file: %d %.300s", code, b)
			}
			t.Fatalf("cold file: %d bytes, want %d", len(b), len(want))
		}
		deadline := time.Now().Add(5 * time.Second)
		for len(distKeys(lst)) == 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond) // the commit follows the response
		}
		stop()
		e2 := start(t, e.store, f, url)
		u2 := strings.Replace(u, e.base, e2.base, 1)
		code, stored, b, err := Get(t, u2)
		if code != 200 || err != nil || string(b) != string(want) {
			t.Errorf("stored file after a restart, upstream down: %d %v, %d bytes", code, err, len(b))
		}
		// The first, streamed answer carries the headers a stored copy does.
		for _, k := range []string{"Content-Type", "Content-Length", "Last-Modified", "Cache-Control", "Accept-Ranges"} {
			if (cold.Get(k) == "") != (stored.Get(k) == "") {
				t.Errorf("%s: %q on the cold answer, %q on the stored one", k, cold.Get(k), stored.Get(k))
			}
		}
		code, h, _, _ := Get(t, "HEAD "+u2)
		if code != 200 || h.Get("Content-Length") != itoa(len(want)) || h.Get("Accept-Ranges") != "bytes" {
			t.Errorf("HEAD: %d, Content-Length %q, Accept-Ranges %q", code, h.Get("Content-Length"), h.Get("Accept-Ranges"))
		}
		code, _, b, _ = Get(t, u2, "Range", "bytes=10-19")
		if code != http.StatusPartialContent || string(b) != string(want[10:20]) {
			t.Errorf("Range: %d %q", code, b)
		}
	})

	t.Run("distinct names and forms never share a key", func(t *testing.T) {
		if len(f.Forms) < 2 {
			t.Skip("the fixture names no forms")
		}
		url, _, _ := f.Start(t)
		// Each answer alone, from a mirror that was asked nothing else.
		alone := make([][]byte, len(f.Forms))
		for i, req := range f.Forms {
			lst, _ := local.New(t.TempDir())
			e := start(t, &countingStore{Store: lst}, f, url)
			code, _, b, _ := Get(t, e.base+req[0], req[1:]...)
			if code != 200 {
				t.Fatalf("%v: %d %.200s", req, code, b)
			}
			alone[i] = bytes.ReplaceAll(b, []byte(e.base), []byte("BASE"))
		}
		lst, _ := local.New(t.TempDir())
		e := start(t, &countingStore{Store: lst}, f, url)
		owner := map[string]int{}
		check := func(base string, i int) {
			req := f.Forms[i]
			code, _, b, _ := Get(t, base+req[0], req[1:]...)
			if b = bytes.ReplaceAll(b, []byte(base), []byte("BASE")); code != 200 || !bytes.Equal(b, alone[i]) {
				t.Errorf("%v after the others: %d, %.300s\nwant its answer alone: %.300s", req, code, b, alone[i])
			}
		}
		for i := range f.Forms {
			stop := e.store.record()
			check(e.base, i)
			time.Sleep(50 * time.Millisecond) // commits that follow the response
			for k := range stop() {
				if j, dup := owner[k]; dup {
					t.Errorf("%v and %v share the key %s", f.Forms[j], f.Forms[i], k)
				}
				owner[k] = i
			}
		}
		// Warm (memory), then from storage alone (a fresh replica), in
		// reverse order.
		for _, base := range []string{e.base, start(t, e.store, f, url).base} {
			for i := len(f.Forms) - 1; i >= 0; i-- {
				check(base, i)
			}
		}
	})

	t.Run("client input never escapes its prefix", func(t *testing.T) {
		url, _, _ := f.Start(t)
		lst, _ := local.New(t.TempDir())
		e := start(t, &countingStore{Store: lst}, f, url)
		for _, p := range []string{"/..%2f..%2fetc%2fpasswd", "/%2e%2e/%2e%2e/x", "/a/..%2f..%2f..%2fx/-/x.tgz", "/files/..%2f/x/y"} {
			code, _, _, _ := Get(t, e.base+p)
			if code < 400 || code >= 500 {
				t.Errorf("%s: %d, want 4xx", p, code)
			}
		}
		_ = lst.List(context.Background(), "", func(i storage.Info) error {
			if !strings.HasPrefix(i.Key, "mirror-meta/m/") && !strings.HasPrefix(i.Key, "mirror-dist/m/") {
				t.Errorf("stored outside the mirror's prefixes: %s", i.Key)
			}
			return nil
		})
	})
}

func itoa(n int) string { return strconv.Itoa(n) }

// WriteToken is the token Serve configures for a hosted mirror.
const WriteToken = "mirrortest-write-token-0123456789"

// Do sends a request with a body (an upload, with WriteToken) and returns
// the status and the answer.
func Do(t *testing.T, method, url string, body []byte) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+WriteToken)
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}
