package servertest_test

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/fakepackagist"
	"github.com/mirror-proxy/mirror-proxy/mirror/mirrortest"
	"github.com/mirror-proxy/mirror-proxy/policy"
	"github.com/mirror-proxy/mirror-proxy/proxy"
)

// servedEnv is newEnvWith served by the proxy's own Serve (the HTTP/1.1
// loop of package h1, where kept responses are replayed), not httptest.
func servedEnv(t *testing.T, ttl time.Duration, mod func(*proxy.Options)) *env {
	t.Helper()
	return startEnv(t, ttl, mod, func(srv *proxy.Server) string { return mirrortest.ServeProxy(t, srv) })
}

// metricSum sums the samples of a metric family (any labels) on /metrics.
func metricSum(t *testing.T, e *env, name string) int {
	t.Helper()
	_, b, err := do(t, "GET", strings.TrimSuffix(e.url, "/packagist")+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, l := range strings.Split(string(b), "\n") {
		if l == name || strings.HasPrefix(l, name+" ") || strings.HasPrefix(l, name+"{") {
			f := strings.Fields(l)
			n, _ := strconv.Atoi(f[len(f)-1])
			total += n
		}
	}
	return total
}

// headersOf is a response's header without what differs per request.
func headersOf(res *http.Response) http.Header {
	h := res.Header.Clone()
	h.Del("Date")
	h.Del("X-Request-Id")
	return h
}

// A warm document is sent again from the kept response, byte for byte and
// with the same headers as its handler sent, with and without gzip; the
// request id, the metrics and the request counters are per request.
func TestReplayedResponsesMatchTheHandlers(t *testing.T) {
	if mirrortest.StdHTTP() {
		t.Skip("replays are made by h1's loop only (HTTP_SERVER=fast)")
	}
	e := servedEnv(t, time.Hour, nil)
	u := e.url + "/p2/acme/foo.json"
	for _, enc := range []string{"gzip", "identity"} {
		t.Run(enc, func(t *testing.T) {
			client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
			get := func(id string) (*http.Response, []byte) {
				req, _ := http.NewRequest("GET", u, nil)
				req.Header.Set("Accept-Encoding", enc)
				req.Header.Set("X-Request-Id", id)
				res, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer res.Body.Close()
				b, err := io.ReadAll(res.Body)
				if err != nil {
					t.Fatal(err)
				}
				return res, b
			}
			first, want := get("first") // fetched, or from memory: kept
			replayed := metricSum(t, e, "mirror_replayed_responses_total")
			for i := 0; i < 3; i++ {
				res, got := get("again-" + strconv.Itoa(i))
				if res.StatusCode != 200 || string(got) != string(want) {
					t.Fatalf("replay %d: %d, %d bytes; want 200, the handler's %d bytes", i, res.StatusCode, len(got), len(want))
				}
				if a, b := headersOf(first), headersOf(res); !equalHeader(a, b) {
					t.Errorf("replayed headers differ:\n handler: %v\n replay:  %v", a, b)
				}
				if res.Header.Get("X-Request-Id") != "again-"+strconv.Itoa(i) || res.Header.Get("Date") == "" {
					t.Errorf("request id %q, Date %q", res.Header.Get("X-Request-Id"), res.Header.Get("Date"))
				}
			}
			if n := metricSum(t, e, "mirror_replayed_responses_total") - replayed; n != 3 {
				t.Errorf("%d responses replayed, want 3", n)
			}
		})
	}
	if n := metricSum(t, e, `mirror_http_requests_total{method="GET",route="/packagist/p2/:vendor/:file",status="200"}`); n != 8 {
		t.Errorf("%d p2 requests counted, want 8 (replays included)", n)
	}
}

func equalHeader(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if strings.Join(v, "\x00") != strings.Join(b[k], "\x00") {
			return false
		}
	}
	return true
}

// A kept response is replayed only while its memory entry is the one it
// came from and fresh: once the TTL has passed, the request revalidates,
// and a changed document is what the next requests get.
func TestReplayEndsWhenTheDocumentChanges(t *testing.T) {
	e := servedEnv(t, 300*time.Millisecond, nil)
	u := e.url + "/p2/acme/foo.json"
	do(t, "GET", u)
	_, before, _ := do(t, "GET", u)
	e.up.Publish("acme/foo", fakepackagist.Version{Version: "9.9.9", Ref: strings.Repeat("9", 40)})
	time.Sleep(400 * time.Millisecond)
	for i := 0; i < 3; i++ {
		_, b, err := do(t, "GET", u)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "9.9.9") || string(b) == string(before) {
			t.Fatalf("request %d after the TTL: the old document (%d bytes)", i, len(b))
		}
	}
}

// What no replay may answer: conditional requests, HEAD, requests with a
// header a handler might read, routes behind a token. Each takes the full
// path, and the answer is the handler's.
func TestNotReplayed(t *testing.T) {
	t.Run("conditional, HEAD, unknown header", func(t *testing.T) {
		e := servedEnv(t, time.Hour, nil)
		u := e.url + "/p2/acme/foo.json"
		res, _, _ := do(t, "GET", u)
		do(t, "GET", u)
		replayed := metricSum(t, e, "mirror_replayed_responses_total")
		if r, _, _ := do(t, "GET", u, "If-Modified-Since", res.Header.Get("Last-Modified")); r.StatusCode != http.StatusNotModified {
			t.Errorf("If-Modified-Since: %d, want 304", r.StatusCode)
		}
		if r, b, _ := do(t, "HEAD", u); r.StatusCode != 200 || len(b) != 0 || r.ContentLength <= 0 {
			t.Errorf("HEAD: %d, %d bytes, Content-Length %d", r.StatusCode, len(b), r.ContentLength)
		}
		if r, _, _ := do(t, "GET", u, "X-Something", "1"); r.StatusCode != 200 {
			t.Errorf("unknown header: %d", r.StatusCode)
		}
		if n := metricSum(t, e, "mirror_replayed_responses_total") - replayed; n != 0 {
			t.Errorf("%d of them replayed", n)
		}
	})
	t.Run("route behind a token", func(t *testing.T) {
		e := servedEnv(t, time.Hour, func(o *proxy.Options) { o.Tokens = hostedTokens(t) })
		u := e.url + "/p2/acme/foo.json"
		for i := 0; i < 2; i++ {
			if r, _ := send(t, "GET", u, readSecret, "", nil); r.StatusCode != 200 {
				t.Fatalf("with a token: %d", r.StatusCode)
			}
			if r, _, _ := do(t, "GET", u); r.StatusCode != http.StatusUnauthorized {
				t.Fatalf("without a token: %d, want 401", r.StatusCode)
			}
		}
		if n := metricSum(t, e, "mirror_replayed_responses_total"); n != 0 {
			t.Errorf("%d replayed", n)
		}
	})
}

// A p2 file filtered by a cooldown is replayed too, until the next
// held-back version comes of age: then the full path runs again and the
// version appears.
func TestReplayOfFilteredDocumentEndsWithItsWindow(t *testing.T) {
	if mirrortest.StdHTTP() {
		t.Skip("replays are made by h1's loop only (HTTP_SERVER=fast)")
	}
	e := servedEnv(t, time.Hour, func(o *proxy.Options) { o.Mirrors[0].Cooldown = policy.Cooldown{Age: 72 * time.Hour} })
	ofAge := time.Now().Add(4 * time.Second).Truncate(time.Second) // publish times have whole seconds
	e.up.Publish("acme/foo", fakepackagist.Version{Version: "7.7.7", Ref: strings.Repeat("7", 40), Time: ofAge.Add(-72 * time.Hour)})
	u := e.url + "/p2/acme/foo.json"
	_, first, _ := do(t, "GET", u)
	if strings.Contains(string(first), "7.7.7") || !strings.Contains(string(first), "1.0.0") {
		t.Fatalf("the young version is not held back, or nothing is served: %.300s", first)
	}
	replayed := metricSum(t, e, "mirror_replayed_responses_total")
	for i := 0; i < 3; i++ {
		if _, b, _ := do(t, "GET", u); string(b) != string(first) {
			t.Fatalf("request %d: %.300s, want the filtered document", i, b)
		}
	}
	if n := metricSum(t, e, "mirror_replayed_responses_total") - replayed; n != 3 {
		t.Errorf("%d filtered responses replayed, want 3", n)
	}
	time.Sleep(time.Until(ofAge) + 200*time.Millisecond)
	if _, b, _ := do(t, "GET", u); !strings.Contains(string(b), "7.7.7") {
		t.Errorf("the version came of age, the p2 file still holds it back (%d bytes)", len(b))
	}
}
