package coord_test

import (
	"context"
	"io"
	"net"
	"net/url"
	"sync/atomic"
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

// slowFirstConn forwards connections to addr; the first connection's
// replies are held back past the client's read timeout (a Redis slowed by
// a burst), later connections are forwarded as they are.
func slowFirstConn(t *testing.T, addr string) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var n atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			slow := n.Add(1) == 1
			go func() {
				s, err := net.Dial("tcp", addr)
				if err != nil {
					c.Close()
					return
				}
				go func() { io.Copy(s, c); s.Close() }()
				if slow {
					time.Sleep(700 * time.Millisecond) // past the 300 ms read timeout
				}
				io.Copy(c, s)
				c.Close()
			}()
		}
	}()
	return l.Addr().String()
}

// A lease whose SET landed but whose reply timed out is not lost: the
// retry finds its own token and holds the lease. (It used to report an
// error, and the download went to the upstream without a lease while the
// lease lay taken, unused, for its TTL.)
func TestLeaseTakenDespiteALostReply(t *testing.T) {
	r := testenv.StartRedis(t)
	u, _ := url.Parse(r.URL)
	c, err := coord.NewCoordinator("redis://"+slowFirstConn(t, u.Host)+"/0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	direct, _ := coord.NewCoordinator(r.URL, nil)
	defer direct.Close()
	ctx := context.Background()
	l, ok, err := c.TryLease(ctx, "file", 10*time.Second)
	if err != nil || !ok {
		t.Fatalf("TryLease through a slow first connection: ok=%v err=%v", ok, err)
	}
	if _, ok, _ := direct.TryLease(ctx, "file", 10*time.Second); ok {
		t.Error("another replica took the lease held")
	}
	l.Release()
	if held, _ := direct.Held(ctx, "file"); held {
		t.Error("the lease is still held after Release")
	}
}
