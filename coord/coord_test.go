package coord_test

import (
	"context"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/coord"
	"github.com/mirror-proxy/mirror-proxy/internal/testenv"
)

// A lease that requires progress lapses when its holder stops reporting
// any (a download stuck on a stalled upstream), and is kept while it does.
func TestLeaseLapsesWithoutProgress(t *testing.T) {
	r := testenv.StartRedis(t)
	c, err := coord.NewCoordinator(r.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	ttl := 600 * time.Millisecond

	busy, ok, err := c.TryLease(ctx, "busy", ttl)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	defer busy.Release()
	busy.RequireProgress()
	stuck, ok, err := c.TryLease(ctx, "stuck", ttl)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	defer stuck.Release()
	stuck.RequireProgress()
	for i := 0; i < 15; i++ { // 1.5 s, more than twice the TTL
		busy.Progress()
		time.Sleep(100 * time.Millisecond)
	}
	if held, _ := c.Held(ctx, "busy"); !held {
		t.Errorf("a lease with progress lapsed")
	}
	if held, _ := c.Held(ctx, "stuck"); held {
		t.Errorf("a lease without progress was kept")
	}
}
