package servertest_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/coord"
	"github.com/mirror-proxy/mirror-proxy/internal/testenv"
	"github.com/mirror-proxy/mirror-proxy/proxy"
)

// A request that waits for another replica's download longer than
// LEASE_WAIT gets a 503 with Retry-After, never a 500, and the upstream is
// not asked.
func TestLeaseWaitEndsIn503(t *testing.T) {
	rd := testenv.StartRedis(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	co, err := coord.NewCoordinator(rd.URL, log)
	if err != nil {
		t.Fatal(err)
	}
	defer co.Close()
	e := newEnvWith(t, time.Minute, func(o *proxy.Options) { o.Coordinator, o.LeaseWait = co, time.Second })
	up := e.up
	url := e.distURL(t, "acme/foo", "1.0.0")
	key := "mirror-dist/packagist/acme/foo/1.0.0.0/ref" + url[len(url)-44:]
	// Another replica holds the download lease.
	other, _ := coord.NewCoordinator(rd.URL, log)
	defer other.Close()
	lease, ok, err := other.TryLease(context.Background(), key, time.Minute)
	if err != nil || !ok {
		t.Fatalf("taking the lease: %v %v", ok, err)
	}
	defer lease.Release()
	resp, _, _ := do(t, "GET", url)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("waiting past LEASE_WAIT: %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if n := up.HitsPrefix("/dist/"); n != 0 {
		t.Errorf("the upstream was asked %d times while another replica held the lease", n)
	}
	lease.Release()
	resp, body, _ := do(t, "GET", url)
	if resp.StatusCode != 200 || len(body) == 0 {
		t.Fatalf("after the lease was released: %d", resp.StatusCode)
	}
}
