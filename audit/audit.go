// Package audit is the audit trail: one structured event per request that
// publishes, deletes or yanks, that a policy refuses, that fails
// authentication, or that uses a token on a write route. Each event is
// logged at once on the "audit" logger and, when a storage prefix is set,
// batched into create-only JSON-lines objects
// <prefix>/YYYY/MM/DD/<replica>-<seq>.jsonl that Read gives back.
package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/mirror-proxy/mirror-proxy/storage"
)

// Actions of events.
const (
	Publish = "publish"
	Delete  = "delete" // a version or file removed (npm's unpublish too)
	Yank    = "yank"
	Unyank  = "unyank"
	Write   = "write" // a write route that named no more precise action
	Refuse  = "refuse"
	Auth    = "auth" // a failed authentication
)

// Outcomes of events.
const (
	OK     = "ok"     // the request succeeded (2xx, 3xx)
	Denied = "denied" // refused: authentication, scope, policy (401, 403)
	Failed = "failed" // any other failure (a conflict, bad input, a 5xx)
)

// Event is one audited request.
type Event struct {
	Time    time.Time `json:"time"`
	Replica string    `json:"replica"`
	Action  string    `json:"action"`
	Mirror  string    `json:"mirror,omitempty"`
	Package string    `json:"package,omitempty"`
	Version string    `json:"version,omitempty"`
	// Token is the name of the configured token the request carried
	// (never the token).
	Token string `json:"token,omitempty"`
	// Client is the client's address (X-Forwarded-For from a trusted
	// proxy only).
	Client  string `json:"client,omitempty"`
	Outcome string `json:"outcome"`
	Status  int    `json:"status"`
	// Reason says why it was refused or failed: the policy ("cooldown",
	// "deny", "advisory", "snapshot") or the error's message.
	Reason    string `json:"reason,omitempty"`
	Method    string `json:"method,omitempty"`
	Path      string `json:"path,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

// OutcomeOf is the outcome of a response status.
func OutcomeOf(status int) string {
	switch {
	case status < 400:
		return OK
	case status == 401 || status == 403:
		return Denied
	}
	return Failed
}

// Config configures a Trail.
type Config struct {
	// Replica names this process in events and object names.
	Replica string
	// Log receives every event at once (the "audit" logger).
	Log *slog.Logger
	// Store and Prefix, when Prefix is set, keep the events.
	Store  storage.Store
	Prefix string
	// Flush is the longest an event waits for its batch to be written
	// (default 5 s).
	Flush time.Duration
	// MaxBatch is the number of events that starts a write before Flush
	// (default 1000).
	MaxBatch int
}

// maxPending bounds the events kept while storage refuses them; beyond
// it the oldest are dropped (they were logged when recorded).
const maxPending = 100_000

// Trail records events.
type Trail struct {
	cfg   Config
	start int64 // unix seconds at start: names of this process's objects

	mu      sync.Mutex
	pending []Event // recorded, not yet in a batch
	kick    chan struct{}

	flushMu sync.Mutex // one flush at a time, in order
	seq     int
	unsent  []*batch // encoded, not known to be stored
}

// batch is one object of events: its name is chosen once, so that a
// write that landed although it reported a failure (a timeout) is found
// on the retry, not written again under another name.
type batch struct {
	day    string
	key    string
	body   []byte
	events int
}

// New makes a trail; Run writes its batches until its context ends.
func New(cfg Config) *Trail {
	if cfg.Flush <= 0 {
		cfg.Flush = 5 * time.Second
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 1000
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Trail{cfg: cfg, start: time.Now().Unix(), kick: make(chan struct{}, 1)}
}

// Stored reports whether events are kept in storage.
func (t *Trail) Stored() bool { return t != nil && t.cfg.Prefix != "" && t.cfg.Store != nil }

// Record logs e and queues it for storage. Time and Replica are set here.
func (t *Trail) Record(e Event) {
	if t == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	e.Replica = t.cfg.Replica
	t.cfg.Log.Info("audit", "action", e.Action, "mirror", e.Mirror, "package", e.Package, "version", e.Version,
		"token", e.Token, "client", e.Client, "outcome", e.Outcome, "status", e.Status, "reason", e.Reason,
		"method", e.Method, "path", e.Path, "request_id", e.RequestID, "replica", e.Replica)
	if !t.Stored() {
		return
	}
	t.mu.Lock()
	if len(t.pending) >= maxPending {
		t.cfg.Log.Error("audit: storage keeps refusing the trail; dropping the oldest event (it was logged)")
		t.pending = t.pending[1:]
	}
	t.pending = append(t.pending, e)
	full := len(t.pending) >= t.cfg.MaxBatch
	t.mu.Unlock()
	if full {
		select {
		case t.kick <- struct{}{}:
		default:
		}
	}
}

// Run writes batches every Flush (or when one is full) until ctx ends;
// Close writes what is left.
func (t *Trail) Run(ctx context.Context) {
	if !t.Stored() {
		return
	}
	tick := time.NewTicker(t.cfg.Flush)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-t.kick:
		}
		if err := t.Flush(ctx); err != nil {
			t.cfg.Log.Warn("audit: writing the trail failed; retrying with the next batch", "err", err)
		}
	}
}

// Flush writes the pending events, one object per day they fall on.
// Objects that could not be written are tried again, under the same
// name, by the next Flush.
func (t *Trail) Flush(ctx context.Context) error {
	if !t.Stored() {
		return nil
	}
	t.flushMu.Lock()
	defer t.flushMu.Unlock()
	t.mu.Lock()
	events := t.pending
	t.pending = nil
	t.mu.Unlock()
	for len(events) > 0 {
		day := events[0].Time.UTC().Format("2006/01/02")
		n := 1
		for n < len(events) && events[n].Time.UTC().Format("2006/01/02") == day {
			n++
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		for _, e := range events[:n] {
			_ = enc.Encode(e) // an Event always encodes
		}
		b := &batch{day: day, body: buf.Bytes(), events: n}
		b.key = t.nextKey(day)
		t.unsent = append(t.unsent, b)
		events = events[n:]
	}
	var firstErr error
	left := t.unsent[:0]
	total := 0
	for _, b := range t.unsent {
		if err := t.write(ctx, b); err != nil {
			left = append(left, b)
			total += b.events
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	for total > maxPending && len(left) > 1 {
		t.cfg.Log.Error("audit: storage keeps refusing the trail; dropping the oldest batch (its events were logged)",
			"events", left[0].events)
		total -= left[0].events
		left = left[1:]
	}
	t.unsent = left
	return firstErr
}

// nextKey names a new object of day: <replica>-<start>.<n>, so that the
// names of one replica sort in the order written, across restarts.
func (t *Trail) nextKey(day string) string {
	t.seq++
	return fmt.Sprintf("%s/%s/%s-%d.%06d.jsonl", t.cfg.Prefix, day, t.cfg.Replica, t.start, t.seq)
}

// write stores b, create-only: no object is ever rewritten. Its name
// taken already by the same bytes means an earlier try landed; by other
// bytes (a replica restarted with the same REPLICA_ID within the second),
// it moves on to a new name.
func (t *Trail) write(ctx context.Context, b *batch) error {
	for range 100 {
		err := t.cfg.Store.Put(ctx, b.key, bytes.NewReader(b.body), storage.PutOptions{
			Size: int64(len(b.body)), CreateOnly: true, ContentType: "application/jsonl"})
		if err == nil || !errors.Is(err, storage.ErrExists) {
			return err
		}
		same, err := t.holds(ctx, b)
		if err != nil || same {
			return err
		}
		b.key = t.nextKey(b.day)
	}
	return fmt.Errorf("audit: no free object name under %s/%s for replica %s", t.cfg.Prefix, b.day, t.cfg.Replica)
}

// holds reports whether b's object is stored with b's bytes.
func (t *Trail) holds(ctx context.Context, b *batch) (bool, error) {
	rc, _, err := t.cfg.Store.Get(ctx, b.key, storage.Whole)
	if err != nil {
		return false, err
	}
	defer rc.Close()
	got, err := io.ReadAll(io.LimitReader(rc, int64(len(b.body))+1))
	if err != nil {
		return false, err
	}
	return bytes.Equal(got, b.body), nil
}

// Close writes the pending events (at shutdown, after the last request).
func (t *Trail) Close(ctx context.Context) error {
	if !t.Stored() {
		return nil
	}
	err := t.Flush(ctx)
	if err != nil {
		n := 0
		t.flushMu.Lock()
		for _, b := range t.unsent {
			n += b.events
		}
		t.flushMu.Unlock()
		t.cfg.Log.Error("audit: events not stored at shutdown (they were logged)", "events", n, "err", err)
	}
	return err
}
