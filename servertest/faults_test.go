package servertest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/cache"
	"github.com/mirror-proxy/mirror-proxy/coord"
	"github.com/mirror-proxy/mirror-proxy/internal/hostile"
	"github.com/mirror-proxy/mirror-proxy/internal/testenv"
	"github.com/mirror-proxy/mirror-proxy/proxy"
	"github.com/mirror-proxy/mirror-proxy/storage"
	"github.com/mirror-proxy/mirror-proxy/storage/breaker"
	"github.com/mirror-proxy/mirror-proxy/storage/local"
	s3store "github.com/mirror-proxy/mirror-proxy/storage/s3"
)

// timedGet is a GET with a deadline; it reports the status (0 on error).
func timedGet(t testing.TB, url string, d time.Duration) (int, []byte, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, time.Since(start)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return 0, nil, time.Since(start)
	}
	return resp.StatusCode, buf.Bytes(), time.Since(start)
}

// A stalled S3 (versitygw under SIGSTOP) costs a request at most the
// storage timeout, then the proxy serves from the upstream; once the
// circuit is open requests do not wait at all, and /readyz answers at
// once and reports the store degraded.
func TestStalledStorageFallsBackQuickly(t *testing.T) {
	srv := testenv.StartS3(t)
	bucket := srv.NewBucket(t)
	st, err := s3store.New(context.Background(), s3store.Config{Bucket: bucket, Endpoint: srv.Endpoint, Region: srv.Region,
		AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey, PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	guarded := breaker.New(st, breaker.Options{Timeout: 500 * time.Millisecond, OpenFor: 2 * time.Second})
	e := newEnvWith(t, 50*time.Millisecond, func(o *proxy.Options) {
		o.Store = guarded
		o.Ready = func(ctx context.Context) error { return st.Ping(ctx) }
	})
	base := strings.TrimSuffix(e.url, "/packagist")
	var urls []string
	for _, v := range []string{"1.0.0", "1.1.0"} {
		u := e.distURL(t, "acme/foo", v)
		if code, _, _ := timedGet(t, u, 10*time.Second); code != 200 {
			t.Fatalf("warm-up %s: %d", u, code)
		}
		urls = append(urls, u)
	}
	time.Sleep(200 * time.Millisecond) // the uploads land
	// A fresh replica on the same storage: nothing in its memory.
	old := base
	e.restart(t)
	base = strings.TrimSuffix(e.url, "/packagist")
	for i := range urls {
		urls[i] = base + strings.TrimPrefix(urls[i], old)
	}
	srv.Pause()
	defer srv.Resume()
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var slow []string
	for i := 0; i < 6; i++ {
		wg.Go(func() {
			u := urls[i%len(urls)]
			code, _, d := timedGet(t, u, 10*time.Second)
			mu.Lock()
			defer mu.Unlock()
			if code != 200 || d > 4*time.Second {
				slow = append(slow, fmt.Sprintf("%s: %d after %v", u, code, d))
			}
		})
	}
	wg.Wait()
	if len(slow) > 0 {
		t.Errorf("with S3 stalled, files served before were slow or failed:\n%s", strings.Join(slow, "\n"))
	}
	if code, _, _ := timedGet(t, e.url+"/p2/acme/foo.json", 5*time.Second); code != 200 {
		t.Errorf("metadata with S3 stalled: %d", code)
	}
	// With the circuit open, a warm request does not wait on storage.
	if code, _, d := timedGet(t, urls[0], 5*time.Second); code != 200 || d > time.Second {
		t.Errorf("with the circuit open: %d after %v", code, d)
	}
	deadline := time.Now().Add(6 * time.Second)
	for {
		code, body, d := timedGet(t, base+"/readyz", 5*time.Second)
		if d > time.Second {
			t.Errorf("/readyz took %v with S3 stalled", d)
		}
		if code == 200 && bytes.Contains(body, []byte(`"degraded"`)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never reported degraded storage: %d %s", code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("stalled-store phase took %v", time.Since(start))
	srv.Resume()
	deadline = time.Now().Add(10 * time.Second)
	for guarded.Open() || !strings.Contains(string(must(timedGet(t, base+"/readyz", 5*time.Second))), `"storage":"ok"`) {
		if time.Now().After(deadline) {
			t.Fatalf("storage did not come back: open=%v", guarded.Open())
		}
		timedGet(t, urls[0], 5*time.Second)
		time.Sleep(200 * time.Millisecond)
	}
}

func must(_ int, b []byte, _ time.Duration) []byte { return b }

// A dist that failed verification is remembered for a while, through
// Redis by every replica: the others answer the same 502 without fetching
// it again.
func TestVerificationFailureIsShared(t *testing.T) {
	r := testenv.StartRedis(t)
	up := startHostile(t)
	up.Handle("/packages.json", hostile.Body("application/json", composerRoot))
	up.Handle("/p2/a/bad.json", hostile.Body("application/json", p2JSON("a/bad", up.URL()+"/dl/bad.zip", strings.Repeat("0", 40))))
	up.Handle("/dl/bad.zip", hostile.Bytes(bytes.Repeat([]byte("z"), 2<<20)))
	bases := replicas(t, 3, r.URL, up.URL())
	for _, b := range bases {
		code, _, _ := timedGet(t, b+"/m/zipball/a/bad/1.0.0.0/refabc.zip", 10*time.Second)
		if code == 200 {
			t.Errorf("%s: a corrupt file was served cleanly", b)
		}
	}
	if n := up.HitsPrefix("/dl/"); n != 1 {
		t.Errorf("a file that failed verification was fetched %d times by 3 replicas, want 1", n)
	}
}

// replicas starts n proxies mirroring a composer upstream as "m" on one
// local store, coordinated through the Redis at redisURL, and returns
// their base URLs.
func replicas(t *testing.T, n int, redisURL, upstream string) []string {
	t.Helper()
	dir := t.TempDir()
	var bases []string
	for i := 0; i < n; i++ {
		co, err := coord.NewCoordinator(redisURL, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { co.Close() })
		bases = append(bases, newProxy(t, dir, "composer", upstream, func(o *proxy.Options) { o.Coordinator = co }).base)
	}
	return bases
}

// A disk cache on a full disk never fails a response: files already in
// storage are served whole, and cold files are served and stored.
func TestFullDiskCacheNeverFailsAFile(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	cacheDir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", cacheDir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", cacheDir).Run() })
	disk, err := cache.NewDisk(cacheDir, 1<<30) // the limit says 1 GiB; the disk has 8 MiB
	if err != nil {
		t.Fatal(err)
	}
	e := newHostile(t, "composer", "", func(o *proxy.Options) { o.DistCache, o.DistCacheDir = disk, cacheDir })
	big := makeZip(t, "big.bin", string(randomBytes(12<<20)))
	up := e.up
	up.Handle("/packages.json", hostile.Body("application/json", composerRoot))
	up.Handle("/p2/a/big.json", hostile.Body("application/json", p2JSON("a/big", up.URL()+"/dl/big.zip", sha1hex(big))))
	up.Handle("/dl/big.zip", hostile.Bytes(big))
	url := e.base + "/m/zipball/a/big/1.0.0.0/refabc.zip"
	// Cold, then from storage on fresh replicas (filling the cache fails).
	for i, base := range []string{e.base, e.replica(t), e.replica(t)} {
		url := base + strings.TrimPrefix(url, e.base)
		code, body, _ := timedGet(t, url, 20*time.Second)
		if code != 200 || !bytes.Equal(body, big) {
			t.Fatalf("request %d with a full cache disk: %d, %d of %d bytes", i, code, len(body), len(big))
		}
	}
	if k := storedKeys(t, e.store, "mirror-dist/"); len(k) != 1 {
		t.Errorf("stored %v", k)
	}
}

// A download whose body stalls is given up after UpstreamIdleTimeout,
// not after the download timeout.
func TestStalledUpstreamBodyIsGivenUp(t *testing.T) {
	e := newHostile(t, "composer", "", func(o *proxy.Options) { o.UpstreamIdleTimeout = 500 * time.Millisecond })
	e.up.Handle("/packages.json", hostile.Body("application/json", composerRoot))
	e.up.Handle("/p2/a/stall.json", hostile.Body("application/json", p2JSON("a/stall", e.up.URL()+"/dl/stall.zip", "")))
	e.up.Handle("/dl/stall.zip", hostile.Stall(make([]byte, 2<<20), make([]byte, 1<<20), time.Minute))
	code, _, d := timedGet(t, e.base+"/m/zipball/a/stall/1.0.0.0/refabc.zip", 30*time.Second)
	if code == 200 || d > 5*time.Second {
		t.Errorf("a stalled upstream body: %d after %v", code, d)
	}
	if !strings.Contains(e.logs.String(), "UPSTREAM_IDLE_TIMEOUT") {
		t.Errorf("the log does not say why:\n%s", e.logs.String())
	}
}

// An aborted response is logged and counted with its reason.
func TestAbortedResponsesAreLoggedAndCounted(t *testing.T) {
	e := newHostile(t, "composer", "", nil)
	e.up.Handle("/packages.json", hostile.Body("application/json", composerRoot))
	e.up.Handle("/p2/a/bad.json", hostile.Body("application/json", p2JSON("a/bad", e.up.URL()+"/dl/bad.zip", strings.Repeat("0", 40))))
	// The body pauses before its end, so that the response has begun when
	// the checksum fails (a download that ends first is a plain 502).
	z := bytes.Repeat([]byte("z"), 3<<20)
	e.up.Handle("/dl/bad.zip", hostile.Stall(z[:2<<20], z[2<<20:], 500*time.Millisecond))
	code, _, _ := timedGet(t, e.base+"/m/zipball/a/bad/1.0.0.0/refabc.zip", 10*time.Second)
	if code == 200 {
		t.Fatalf("corrupt file served cleanly")
	}
	time.Sleep(100 * time.Millisecond)
	_, metrics, _ := timedGet(t, e.base+"/metrics", 5*time.Second)
	if !strings.Contains(string(metrics), `mirror_aborted_responses_total{reason="download failed"} 1`) {
		t.Errorf("the abort is not counted:\n%s", metrics)
	}
	if !strings.Contains(e.logs.String(), "response aborted") {
		t.Errorf("the abort is not logged:\n%s", e.logs.String())
	}
}

// An idle replica notices that Redis died: mirror_redis_up follows a
// periodic check, not only the requests that happen to use Redis.
func TestIdleReplicaNoticesRedisDown(t *testing.T) {
	r := testenv.StartRedis(t)
	co, err := coord.NewCoordinator(r.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer co.Close()
	e := newEnvWith(t, time.Minute, func(o *proxy.Options) { o.Coordinator = co })
	base := strings.TrimSuffix(e.url, "/packagist")
	wait := func(want string) {
		t.Helper()
		deadline := time.Now().Add(8 * time.Second)
		for {
			_, m, _ := timedGet(t, base+"/metrics", 5*time.Second)
			if strings.Contains(string(m), want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("metrics never showed %q", want)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	wait("mirror_redis_up 1")
	r.Stop()
	wait("mirror_redis_up 0")
}

// The first fetch of a cold metadata document is shared by the replicas:
// one asks the upstream, the others read what it stored.
func TestColdMetadataFetchedOnceAcrossReplicas(t *testing.T) {
	r := testenv.StartRedis(t)
	up := startHostile(t)
	up.Handle("/packages.json", hostile.Body("application/json", composerRoot))
	up.Handle("/p2/*", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(500 * time.Millisecond)
		name := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/p2/"), ".json")
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(p2JSON(name, up.URL()+"/dl/x.zip", "")))
	})
	bases := replicas(t, 3, r.URL, up.URL())
	for _, b := range bases { // roots warm, so that only the p2 files are cold
		timedGet(t, b+"/m/packages.json", 5*time.Second)
	}
	var wg sync.WaitGroup
	for _, name := range []string{"a/one", "a/two", "a/three"} {
		for _, b := range bases {
			wg.Go(func() {
				if code, _, _ := timedGet(t, b+"/m/p2/"+name+".json", 10*time.Second); code != 200 {
					t.Errorf("%s on %s: %d", name, b, code)
				}
			})
		}
	}
	wg.Wait()
	if n := up.HitsPrefix("/p2/"); n != 3 {
		t.Errorf("3 cold documents on 3 replicas made %d upstream fetches, want 3", n)
	}
}

// Upstream waits do not add up: a dist whose metadata hangs fails after
// about one upstream timeout, not one per document it looks at.
func TestDistRequestTimeIsBounded(t *testing.T) {
	e := newHostile(t, "composer", "", func(o *proxy.Options) { o.UpstreamTimeout = 2 * time.Second })
	e.up.Handle("/packages.json", hostile.Body("application/json", composerRoot))
	e.up.Handle("/p2/*", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(30 * time.Second):
		case <-r.Context().Done():
		}
	})
	timedGet(t, e.base+"/m/packages.json", 5*time.Second)
	code, body, d := timedGet(t, e.base+"/m/zipball/a/hang/1.0.0.0/refabc.zip", 20*time.Second)
	if code < 500 || d > 3500*time.Millisecond {
		t.Errorf("a dist with hanging metadata: %d %s after %v, want a 5xx after about 2 s", code, body, d)
	}
}

// failingGet is a store whose reads fail (S3 dying between a Stat and
// the Get that follows).
type failingGet struct{ storage.Store }

func (f failingGet) Get(ctx context.Context, key string, r storage.Range) (io.ReadCloser, storage.Info, error) {
	if strings.HasPrefix(key, "mirror-dist/") {
		return nil, storage.Info{}, errors.New("connection reset by peer")
	}
	return f.Store.Get(ctx, key, r)
}

// A stored file whose read fails before the first byte is served from
// the upstream instead of failing the request.
func TestStorageReadFailureFallsBackToUpstream(t *testing.T) {
	var broken atomic.Bool
	e := newEnvWith(t, time.Minute, func(o *proxy.Options) { o.Store = switchable{o.Store, &broken} })
	url := e.distURL(t, "acme/foo", "1.1.0")
	if code, _, _ := timedGet(t, url, 10*time.Second); code != 200 {
		t.Fatalf("warm-up: %d", code)
	}
	time.Sleep(100 * time.Millisecond)
	broken.Store(true)
	code, body, _ := timedGet(t, url, 10*time.Second)
	if code != 200 || !bytes.Equal(body, e.up.Zip("acme/foo", "1.1.0")) {
		t.Errorf("with storage reads failing: %d", code)
	}
}

// switchable fails dist reads while broken is set.
type switchable struct {
	storage.Store
	broken *atomic.Bool
}

func (s switchable) Get(ctx context.Context, key string, r storage.Range) (io.ReadCloser, storage.Info, error) {
	if s.broken.Load() {
		return failingGet{s.Store}.Get(ctx, key, r)
	}
	return s.Store.Get(ctx, key, r)
}

// rangeRecorder records the ranges of the Gets of stored files.
type rangeRecorder struct {
	storage.Store
	mu     sync.Mutex
	ranges []storage.Range
}

func (s *rangeRecorder) Get(ctx context.Context, key string, r storage.Range) (io.ReadCloser, storage.Info, error) {
	if strings.HasPrefix(key, "mirror-dist/") {
		s.mu.Lock()
		s.ranges = append(s.ranges, r)
		s.mu.Unlock()
	}
	return s.Store.Get(ctx, key, r)
}

// A range of a stored file asks storage for its bytes only, not for the
// object's whole tail, and gets them right.
func TestRangeReadsOnlyItsBytesFromStorage(t *testing.T) {
	st, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rec := &rangeRecorder{Store: st}
	e := newEnvWith(t, time.Minute, func(o *proxy.Options) { o.Store = rec })
	url := e.distURL(t, "acme/big", "1.0.0")
	_, whole, err := do(t, "GET", url) // downloaded and stored
	if err != nil || len(whole) < 6<<20 {
		t.Fatalf("cold: %d bytes, %v", len(whole), err)
	}
	for deadline := time.Now().Add(5 * time.Second); len(storedKeys(t, st, "mirror-dist/")) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the file was not stored")
		}
		time.Sleep(20 * time.Millisecond) // the commit follows the response
	}
	for _, c := range []struct {
		hdr        string
		start, end int64
	}{
		{"bytes=65530-70129", 65530, 70130},
		{"bytes=-500", int64(len(whole)) - 500, int64(len(whole))},
		{"bytes=100-", 100, int64(len(whole))},
	} {
		rec.mu.Lock()
		rec.ranges = nil
		rec.mu.Unlock()
		resp, body, err := do(t, "GET", url, "Range", c.hdr)
		if err != nil || resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, whole[c.start:c.end]) {
			t.Fatalf("%s: %d, %d bytes, %v", c.hdr, resp.StatusCode, len(body), err)
		}
		rec.mu.Lock()
		got := append([]storage.Range(nil), rec.ranges...)
		rec.mu.Unlock()
		want := storage.Range{Offset: c.start, Length: c.end - c.start}
		if len(got) != 1 || got[0] != want {
			t.Errorf("%s asked storage for %+v, want one read of %+v", c.hdr, got, want)
		}
	}
}

// A stored file altered in the bucket is never served as a clean 200: its
// read is checked against the digest recorded with it and cut before the
// last byte; the file is dropped and the next request fetches it again,
// verified.
func TestAlteredStoredFileIsNeverServedClean(t *testing.T) {
	e := newEnv(t, time.Minute)
	url := e.distURL(t, "acme/big", "1.0.0")
	_, want, err := do(t, "GET", url)
	if err != nil || len(want) < 6<<20 {
		t.Fatalf("cold: %d bytes, %v", len(want), err)
	}
	for deadline := time.Now().Add(5 * time.Second); len(storedKeys(t, e.store, "mirror-dist/")) == 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond) // the commit follows the response
	}
	keys := storedKeys(t, e.store, "mirror-dist/")
	if len(keys) != 1 {
		t.Fatalf("stored %v", keys)
	}
	if info, _ := e.store.Stat(context.Background(), keys[0]); !strings.HasPrefix(info.Digest, "sha1:") {
		t.Fatalf("stored without the metadata's digest: %+v", info)
	}
	path := filepath.Join(e.store.Dir(), filepath.FromSlash(keys[0]))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{want[4<<20] ^ 0xff}, 4<<20); err != nil { // in place: the recorded digest stays
		t.Fatal(err)
	}
	f.Close()
	old := strings.TrimSuffix(e.url, "/packagist")
	e.restart(t) // a fresh replica: memory empty, no disk cache
	url = strings.TrimSuffix(e.url, "/packagist") + strings.TrimPrefix(url, old)
	resp, got, err := do(t, "GET", url)
	if err == nil && resp.StatusCode == 200 && len(got) == len(want) {
		t.Fatalf("an altered stored file was served as a clean 200 (bytes equal: %v)", bytes.Equal(got, want))
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, got, err = do(t, "GET", url)
		if err == nil && resp.StatusCode == 200 && bytes.Equal(got, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the altered file was dropped: %v %v, %d bytes", resp, err, len(got))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := metricSum(t, e, "mirror_corrupt_stored_reads_total"); n != 1 {
		t.Errorf("mirror_corrupt_stored_reads_total = %d, want 1", n)
	}
}
