// Package coord coordinates replicas through Redis: download leases, shared
// freshness, invalidations and verification-failure memory. It is optional:
// without Redis every replica coordinates itself, and nothing is lost when
// Redis is down or emptied.
package coord

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Coordinator shares short-lived facts between replicas through Redis:
// download leases (cross-replica single-flight), when each metadata
// document was last revalidated, and invalidations of memory copies. Redis
// is never the system of record: every call has a short timeout, and a
// failed call reads as "no information", so the proxy carries on with
// in-process coordination alone.
type Coordinator struct {
	rdb    *redis.Client
	log    *slog.Logger
	prefix string
	// OnError is called after every failed Redis call, OnOK after a good one.
	OnError func(error)
	OnOK    func()
}

const invalChannel = "invalidate"

// NewCoordinator connects to url (redis://[user:pass@]host:port/db). The
// connection is lazy: a Redis that is down at start is retried by every
// later call.
func NewCoordinator(url string, log *slog.Logger) (*Coordinator, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		// Neither the URL (it may hold a password) nor the parser's error
		// (which may quote it) is repeated.
		return nil, errors.New("not a Redis URL (example: redis://[:password@]redis:6379/0)")
	}
	// Fail fast: a stopped Redis must cost a request milliseconds, not the
	// client defaults (5 s timeouts, 3 retries, 5 dials).
	opt.DialTimeout = 300 * time.Millisecond
	opt.ReadTimeout = 300 * time.Millisecond
	opt.WriteTimeout = 300 * time.Millisecond
	opt.PoolTimeout = 300 * time.Millisecond
	// A burst of cold requests asks for hundreds of leases at once: the
	// default pool (10 connections per CPU) would make them wait for a
	// connection past PoolTimeout, and each wait is an error that sends
	// a download to the upstream without a lease.
	opt.PoolSize = max(opt.PoolSize, 256)
	opt.MaxRetries = -1
	opt.DialerRetries = 1
	opt.ContextTimeoutEnabled = true
	return &Coordinator{rdb: redis.NewClient(opt), log: log, prefix: "mirror-proxy:",
		OnError: func(error) {}, OnOK: func() {}}, nil
}

// Close closes the connections.
func (c *Coordinator) Close() error { return c.rdb.Close() }

func (c *Coordinator) result(err error) error {
	if err != nil && !errors.Is(err, redis.Nil) {
		c.OnError(err)
		return err
	}
	c.OnOK()
	return nil
}

func (c *Coordinator) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(parent), 500*time.Millisecond)
}

// Ping checks the connection.
func (c *Coordinator) Ping(ctx context.Context) error {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	return c.result(c.rdb.Ping(ctx).Err())
}

// Lease is a held lease; Release gives it up (only if still ours).
type Lease struct {
	c     *Coordinator
	key   string
	token string
	stop  chan struct{}
	once  sync.Once
	// Once RequireProgress is called, the lease is renewed only if
	// Progress was called since the last renewal: a holder stuck on a
	// stalled transfer lets its lease lapse, and another replica takes
	// over.
	needProgress atomic.Bool
	progressed   atomic.Bool
}

// RequireProgress makes renewals depend on Progress from now on.
func (l *Lease) RequireProgress() {
	l.progressed.Store(true)
	l.needProgress.Store(true)
}

// Progress reports that the work the lease guards moved forward.
func (l *Lease) Progress() { l.progressed.Store(true) }

var releaseScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end`)
var refreshScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) else return 0 end`)

// TryLease takes the lease name for ttl unless another holder has it. The
// lease is refreshed every ttl/3 until released, so it outlives a long
// download but lapses ttl after its holder dies. err is set when Redis
// could not be asked (then ok is false too).
func (c *Coordinator) TryLease(ctx context.Context, name string, ttl time.Duration) (l *Lease, ok bool, err error) {
	var b [12]byte
	_, _ = rand.Read(b[:])
	token := hex.EncodeToString(b[:])
	key := c.prefix + "lease:" + name
	got, err := c.setLease(ctx, key, token, ttl)
	if err != nil || !got {
		return nil, false, err
	}
	l = &Lease{c: c, key: key, token: token, stop: make(chan struct{})}
	go func() {
		t := time.NewTicker(ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-t.C:
				if l.needProgress.Load() && !l.progressed.Swap(false) {
					continue // stalled: let the lease lapse
				}
				rctx, cancel := c.ctx(context.Background())
				_ = c.result(refreshScript.Run(rctx, c.rdb, []string{key}, token, ttl.Milliseconds()).Err())
				cancel()
			}
		}
	}()
	return l, true, nil
}

// setLease sets key to token unless it exists. A timeout (a Redis slowed
// by a burst, not one that is down: that fails at once) is tried again, up
// to twice, with the same token: an earlier try may have set the key and
// lost only its reply, and finding its own token there means the lease is
// ours. Without this, each timeout sent a download to the upstream without
// a lease while the lease it had taken lay unused until its TTL.
func (c *Coordinator) setLease(ctx context.Context, key, token string, ttl time.Duration) (bool, error) {
	for attempt := 0; ; attempt++ {
		cctx, cancel := c.ctx(ctx)
		got, err := c.rdb.SetNX(cctx, key, token, ttl).Result()
		if err == nil && !got && attempt > 0 {
			if v, gerr := c.rdb.Get(cctx, key).Result(); gerr == nil && v == token {
				got = true
			}
		}
		cancel()
		if err != nil && attempt < 2 && isTimeout(err) && ctx.Err() == nil {
			c.OnError(err)
			continue
		}
		return got, c.result(err)
	}
}

// isTimeout reports whether err is a timeout (not a refused connection).
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() ||
		errors.Is(err, redis.ErrPoolTimeout)
}

// Lock waits until it holds the lease name (a lock across replicas; it
// lapses 10 s after a holder dies) or ctx ends; unlock releases it.
func (c *Coordinator) Lock(ctx context.Context, name string) (unlock func(), err error) {
	for {
		l, ok, err := c.TryLease(ctx, "lock:"+name, 10*time.Second)
		if err != nil {
			return nil, err
		}
		if ok {
			return l.Release, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Held reports whether anyone holds the lease name.
func (c *Coordinator) Held(ctx context.Context, name string) (bool, error) {
	cctx, cancel := c.ctx(ctx)
	defer cancel()
	n, err := c.rdb.Exists(cctx, c.prefix+"lease:"+name).Result()
	if err = c.result(err); err != nil {
		return false, err
	}
	return n > 0, nil
}

// Release gives the lease up.
func (l *Lease) Release() {
	l.once.Do(func() {
		close(l.stop)
		ctx, cancel := l.c.ctx(context.Background())
		defer cancel()
		_ = l.c.result(releaseScript.Run(ctx, l.c.rdb, []string{l.key}, l.token).Err())
	})
}

// Checked records that the document key, stored at version (its stored
// time), was confirmed by the upstream at t; the record lives for keep.
func (c *Coordinator) Checked(ctx context.Context, key string, t time.Time, version int64, keep time.Duration) {
	cctx, cancel := c.ctx(ctx)
	defer cancel()
	v := strconv.FormatInt(t.UnixNano(), 10) + " " + strconv.FormatInt(version, 10)
	_ = c.result(c.rdb.Set(cctx, c.prefix+"checked:"+key, v, keep).Err())
}

// LastChecked returns when any replica last confirmed key and the version
// it confirmed; ok is false when nothing is known (or Redis failed).
func (c *Coordinator) LastChecked(ctx context.Context, key string) (t time.Time, version int64, ok bool) {
	cctx, cancel := c.ctx(ctx)
	defer cancel()
	v, err := c.rdb.Get(cctx, c.prefix+"checked:"+key).Result()
	if c.result(err) != nil || err != nil {
		return time.Time{}, 0, false
	}
	a, b, found := strings.Cut(v, " ")
	ns, err1 := strconv.ParseInt(a, 10, 64)
	ver, err2 := strconv.ParseInt(b, 10, 64)
	if !found || err1 != nil || err2 != nil {
		return time.Time{}, 0, false
	}
	return time.Unix(0, ns), ver, true
}

// SetFailed records for keep that the file key failed verification, with
// the message clients get.
func (c *Coordinator) SetFailed(ctx context.Context, key, msg string, keep time.Duration) {
	cctx, cancel := c.ctx(ctx)
	defer cancel()
	_ = c.result(c.rdb.Set(cctx, c.prefix+"failed:"+key, msg, keep).Err())
}

// Failed returns the message of a recent verification failure of key.
func (c *Coordinator) Failed(ctx context.Context, key string) (string, bool) {
	cctx, cancel := c.ctx(ctx)
	defer cancel()
	v, err := c.rdb.Get(cctx, c.prefix+"failed:"+key).Result()
	if c.result(err) != nil || err != nil {
		return "", false
	}
	return v, true
}

// Invalidate tells every replica that key changed.
func (c *Coordinator) Invalidate(ctx context.Context, key string) {
	cctx, cancel := c.ctx(ctx)
	defer cancel()
	_ = c.result(c.rdb.Publish(cctx, c.prefix+invalChannel, key).Err())
}

// Subscribe calls onKey for every invalidation from any replica, and
// onResubscribe after every (re)connection of the subscription: messages
// sent while disconnected are lost, so local copies must be treated as
// possibly stale then. It returns when ctx ends.
func (c *Coordinator) Subscribe(ctx context.Context, onKey func(string), onResubscribe func()) {
	ps := c.rdb.Subscribe(ctx, c.prefix+invalChannel)
	defer ps.Close()
	ch := ps.ChannelWithSubscriptions(redis.WithChannelSize(1024))
	for {
		select {
		case <-ctx.Done():
			return
		case msg, ok := <-ch:
			if !ok {
				return
			}
			switch m := msg.(type) {
			case *redis.Subscription:
				if m.Kind == "subscribe" {
					onResubscribe()
				}
			case *redis.Message:
				onKey(m.Payload)
			}
		}
	}
}

// FirstUses adds keys to the set of keys used on day (kept two days) and
// returns those no replica had added before: each key is recorded once
// per day across the fleet. On a Redis failure every key is returned (a
// duplicate record is harmless).
func (c *Coordinator) FirstUses(ctx context.Context, day string, keys []string) []string {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	set := c.prefix + "used:" + day
	cmds := make([]*redis.IntCmd, len(keys))
	_, err := c.rdb.Pipelined(cctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.SAdd(cctx, set, k)
		}
		p.Expire(cctx, set, 48*time.Hour)
		return nil
	})
	if c.result(err) != nil {
		return keys
	}
	var first []string
	for i, cmd := range cmds {
		if cmd.Val() > 0 {
			first = append(first, keys[i])
		}
	}
	return first
}
