package fetch

import (
	"context"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mirror-proxy/mirror-proxy/access"
)

// The access log notes, in memory, each stored file this replica serves,
// once per file per day, and every AccessFlush writes the new ones as one
// access record (package access); with Redis, a file another replica
// already recorded that day is left out. It costs the request path a map
// lookup; retention (mirror-proxy gc) reads the records.
type accessLog struct {
	mu      sync.Mutex
	seen    map[string]map[string]bool // day → keys noted
	pending map[string][]string        // day → keys noted, not yet written
	day     string                     // today, as records name it, until dayEnd
	dayEnd  time.Time
}

// noteAccess notes that key was served (files under Config.AccessOf only).
func (c *Core) noteAccess(key string) {
	if c.cfg.AccessPrefix == "" || !strings.HasPrefix(key, c.cfg.AccessOf) {
		return
	}
	now := c.now()
	a := &c.access
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.seen == nil {
		a.seen, a.pending = map[string]map[string]bool{}, map[string][]string{}
	}
	if !now.Before(a.dayEnd) { // the day's name is made once a day, not per request
		a.day = access.Day(now)
		a.dayEnd = now.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	}
	day := a.day
	s := a.seen[day]
	if s == nil {
		s = map[string]bool{}
		a.seen[day] = s
		for d := range a.seen { // keep today and yesterday
			if d < access.Day(now.Add(-24*time.Hour)) {
				delete(a.seen, d)
			}
		}
	}
	if !s[key] {
		s[key] = true
		a.pending[day] = append(a.pending[day], key)
	}
}

// FlushAccess writes what the access log noted since the last flush. A
// record that cannot be written is kept for the next flush.
func (c *Core) FlushAccess(ctx context.Context) error {
	a := &c.access
	a.mu.Lock()
	pending := a.pending
	a.pending = map[string][]string{}
	a.mu.Unlock()
	days := make([]string, 0, len(pending))
	for d := range pending {
		days = append(days, d)
	}
	sort.Strings(days)
	var firstErr error
	for _, day := range days {
		keys := pending[day]
		if c.coord != nil {
			keys = c.coord.FirstUses(ctx, day, keys)
		}
		if len(keys) == 0 {
			continue
		}
		if err := access.Write(ctx, c.store, c.cfg.AccessPrefix, day, c.id, keys, c.now()); err != nil {
			c.log.Warn("access record not written; kept for the next flush", "day", day, "keys", len(keys), "err", err)
			a.mu.Lock()
			a.pending[day] = append(a.pending[day], keys...)
			a.mu.Unlock()
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	return firstErr
}

// flushAccessLoop flushes the access log every AccessFlush until the core
// stops, then once more.
func (c *Core) flushAccessLoop() {
	t := time.NewTicker(c.cfg.AccessFlush)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			_ = c.FlushAccess(c.bg)
		case <-c.bg.Done():
			ctx, cancel := context.WithTimeout(context.WithoutCancel(c.bg), 10*time.Second)
			_ = c.FlushAccess(ctx)
			cancel()
			return
		}
	}
}
