package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/fakepypi"
	"github.com/mirror-proxy/mirror-proxy/internal/testenv"
)

// cluster is three proxy processes on one bucket and one Redis.
type cluster struct {
	t      *testing.T
	s3     *testenv.S3
	redis  *testenv.Redis
	up     *fakepypi.Server
	bucket string
	env    func() map[string]string
	px     []*proc
}

func (c *cluster) index(i int) string { return c.px[i%len(c.px)].URL + "/pypi/simple/" }

// fileURL returns the proxy URL (on replica i) of a release's wheel.
func (c *cluster) fileURL(i int, project, version string) string {
	c.t.Helper()
	_, _, body := get(c.t, c.index(i)+project+"/", "Accept", "application/vnd.pypi.simple.v1+json")
	var page struct{ Files []map[string]any }
	json.Unmarshal(body, &page)
	want := fakepypi.Filename(project, version)
	for _, f := range page.Files {
		if f["filename"] == want {
			return resolveURL(c.t, c.index(i)+project+"/", f["url"].(string))
		}
	}
	c.t.Fatalf("%s not on the page of %s: %s", want, project, body)
	return ""
}

// fetch GETs url and reports an error unless the body equals want.
func fetch(url string, want []byte) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("GET %s: body: %v", url, err)
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if want != nil && !bytes.Equal(b, want) {
		return fmt.Errorf("GET %s: %d bytes differ from the %d expected", url, len(b), len(want))
	}
	return nil
}

// eventually polls cond for up to 15 s (storage writes finish after the
// client has its last byte).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Errorf("not true after 15 s: %s", what)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestThreeReplicasOneBucket(t *testing.T) {
	testenv.Deadline(t, 4*time.Minute)
	s3 := testenv.StartS3(t)
	redis := testenv.StartRedis(t)
	up := fakepypi.New(false)
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	upAddr := up.Addr()
	c := &cluster{t: t, s3: s3, redis: redis, up: up, bucket: s3.NewBucket(t)}
	c.env = func() map[string]string {
		return map[string]string{
			"STORAGE_SOURCE": "s3", "STORAGE_AWS_BUCKET": c.bucket, "STORAGE_AWS_ARGS": s3.ArgsJSON(),
			"MIRRORS":                   `[{"name":"pypi","type":"pypi","url":"` + up.IndexURL() + `","ttl":"2s","notFoundTtl":"2s"}]`,
			"MIRROR_METADATA_CACHE_DIR": t.TempDir(), "MIRROR_DIST_CACHE_DIR": t.TempDir(),
			"REDIS_URL": redis.URL, "LEASE_WAIT": "60s",
		}
	}
	top := t // proxies started in subtests outlive them
	for range 3 {
		c.px = append(c.px, startProxy(t, c.env()))
	}

	t.Run("1 one upstream download for 100 cold requests over three replicas", func(t *testing.T) {
		// 2 MB: large enough to stream while it downloads (over 1 MiB),
		// small enough that 100 copies cost seconds, not minutes; the point
		// is one upstream fetch, not volume.
		up.Publish("big-wheel", fakepypi.Release{Version: "1.5", Size: 2 << 20})
		fn := fakepypi.Filename("big-wheel", "1.5")
		want := up.Wheel(fn)
		urls := []string{c.fileURL(0, "big-wheel", "1.5"), c.fileURL(1, "big-wheel", "1.5"), c.fileURL(2, "big-wheel", "1.5")}
		up.SetDelay(time.Second)
		defer up.SetDelay(0)
		var wg sync.WaitGroup
		var failed atomic.Int32
		for i := range 100 {
			wg.Go(func() {
				if err := fetch(urls[i%3], want); err != nil {
					failed.Add(1)
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if n := up.Hits("/files/" + fn); n != 1 {
			t.Errorf("100 cold requests over 3 replicas made %d upstream downloads, want 1", n)
		}
	})

	t.Run("2 about one revalidation per TTL across the fleet", func(t *testing.T) {
		page := "/simple/dep-pkg/"
		for i := range 3 {
			get(t, c.index(i)+"dep-pkg/")
		}
		before := up.Hits(page)
		end := time.Now().Add(4500 * time.Millisecond) // a little over two TTLs of 2 s
		for i := 0; time.Now().Before(end); i++ {
			if code, _, _ := get(t, c.index(i)+"dep-pkg/"); code != 200 {
				t.Fatalf("page: %d", code)
			}
			time.Sleep(50 * time.Millisecond)
		}
		n := up.Hits(page) - before
		t.Logf("%d upstream revalidations in two TTLs with three replicas", n)
		if n < 1 || n > 3 {
			t.Errorf("the fleet revalidated %d times in ~2 TTLs; want about one per TTL (2, at most 3), not one per replica", n)
		}
	})

	t.Run("3 redis stopped during load: no failed request; restarted: coordination resumes", func(t *testing.T) {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var fails, total atomic.Int32
		for w := range 6 {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					var err error
					if i%2 == 0 {
						err = fetch(c.index(w+i)+"dep-pkg/", nil)
					} else {
						err = fetch(c.index(w+i)+"foo-bar/", nil)
					}
					total.Add(1)
					if err != nil {
						fails.Add(1)
						t.Error(err)
					}
				}
			})
		}
		time.Sleep(time.Second)
		redis.Stop()
		time.Sleep(3 * time.Second)
		// A cold file while Redis is down: served, in-process coordination.
		if err := fetch(c.fileURL(1, "yanky", "0.9"), up.Wheel(fakepypi.Filename("yanky", "0.9"))); err != nil {
			t.Error(err)
		}
		redis.Start()
		time.Sleep(time.Second)
		close(stop)
		wg.Wait()
		t.Logf("%d requests, %d failed", total.Load(), fails.Load())
		for i := range 3 {
			deadline := time.Now().Add(15 * time.Second)
			for {
				_, _, body := get(t, c.px[i].URL+"/readyz")
				if bytes.Contains(body, []byte(`"redis":"ok"`)) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("replica %d did not reconnect to Redis: %s", i, body)
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
		fn := fakepypi.Filename("nometa", "1.0")
		urls := []string{c.fileURL(0, "nometa", "1.0"), c.fileURL(1, "nometa", "1.0"), c.fileURL(2, "nometa", "1.0")}
		up.SetDelay(time.Second)
		var wg2 sync.WaitGroup
		for i := range 9 {
			wg2.Go(func() {
				if err := fetch(urls[i%3], up.Wheel(fn)); err != nil {
					t.Error(err)
				}
			})
		}
		wg2.Wait()
		up.SetDelay(0)
		if n := up.Hits("/files/" + fn); n != 1 {
			t.Errorf("after Redis came back, a cold file over 3 replicas made %d upstream downloads, want 1", n)
		}
	})

	t.Run("4 S3 stopped: warm content served, cold from upstream, stored again when back", func(t *testing.T) {
		wheel := fakepypi.Filename("Foo.Bar", "1.0")
		urls := []string{c.fileURL(0, "foo-bar", "1.0"), c.fileURL(1, "foo-bar", "1.0"), c.fileURL(2, "foo-bar", "1.0")}
		for _, u := range urls { // warm every replica
			if err := fetch(u, up.Wheel(wheel)); err != nil {
				t.Fatal(err)
			}
		}
		s3.Stop()
		restarted := false
		defer func() {
			if !restarted {
				s3.Start()
			}
		}()
		for i, u := range urls {
			if err := fetch(u, up.Wheel(wheel)); err != nil {
				t.Errorf("replica %d, warm file with S3 down: %v", i, err)
			}
			if err := fetch(c.index(i)+"foo-bar/", nil); err != nil {
				t.Errorf("replica %d, warm page with S3 down: %v", i, err)
			}
			// Readiness comes from a background check every 2 s.
			deadline := time.Now().Add(5 * time.Second)
			for {
				_, _, body := get(t, c.px[i].URL+"/readyz")
				if bytes.Contains(body, []byte(`"degraded"`)) {
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("replica %d /readyz does not report degraded storage: %s", i, body)
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
		up.Publish("dep-pkg", fakepypi.Release{Version: "4.0"})
		time.Sleep(2100 * time.Millisecond)
		cold := fakepypi.Filename("dep-pkg", "4.0")
		if err := fetch(c.fileURL(2, "dep-pkg", "4.0"), up.Wheel(cold)); err != nil {
			t.Errorf("cold file with S3 down: %v", err)
		}
		eventually(t, "a metric says the file was not stored", func() bool {
			_, _, m := get(t, c.px[2].URL+"/metrics")
			return bytes.Contains(m, []byte(`mirror_not_stored_total{kind="file"}`))
		})
		s3.Start()
		restarted = true
		up.Publish("dep-pkg", fakepypi.Release{Version: "4.1"})
		time.Sleep(2100 * time.Millisecond)
		again := fakepypi.Filename("dep-pkg", "4.1")
		if err := fetch(c.fileURL(0, "dep-pkg", "4.1"), up.Wheel(again)); err != nil {
			t.Fatal(err)
		}
		eventually(t, "with S3 back, a new file is stored", func() bool {
			return strings.Contains(strings.Join(s3.Keys(t, c.bucket), "\n"), again)
		})
	})

	t.Run("5 SIGKILL of the replica fetching a cold file", func(t *testing.T) {
		up.Publish("big-wheel", fakepypi.Release{Version: "2.0", Size: 20 << 20})
		time.Sleep(2100 * time.Millisecond)
		fn := fakepypi.Filename("big-wheel", "2.0")
		u0 := c.fileURL(0, "big-wheel", "2.0")
		u1 := c.fileURL(1, "big-wheel", "2.0")
		up.SetDelay(20 * time.Second)
		go fetch(u0, nil)
		deadline := time.Now().Add(10 * time.Second)
		for up.Hits("/files/"+fn) == 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond) // half the file is on its way to storage
		c.px[0].Kill()
		up.SetDelay(0)
		for _, k := range s3.Keys(t, c.bucket) {
			if strings.HasSuffix(k, fn) {
				t.Fatalf("a partial object is visible after SIGKILL: %s", k)
			}
		}
		if err := fetch(u1, up.Wheel(fn)); err != nil {
			t.Errorf("the next request on another replica: %v", err)
		}
		c.px[0] = startProxy(top, c.env())
	})

	t.Run("6 upstream stopped: every replica serves what any stored", func(t *testing.T) {
		// yanky 1.0 was never requested: fetch it through replica 0 only.
		fn := fakepypi.Filename("yanky", "1.0")
		u0 := c.fileURL(0, "yanky", "1.0")
		if err := fetch(u0, up.Wheel(fn)); err != nil {
			t.Fatal(err)
		}
		want := up.Wheel(fn)
		up.Stop()
		defer up.Start(upAddr)
		time.Sleep(2100 * time.Millisecond)
		for i := 1; i < 3; i++ {
			u := strings.Replace(u0, c.px[0].URL, c.px[i].URL, 1)
			if err := fetch(u, want); err != nil {
				t.Errorf("replica %d: %v", i, err)
			}
			if err := fetch(c.index(i)+"yanky/", nil); err != nil {
				t.Errorf("replica %d page: %v", i, err)
			}
		}
	})
}
