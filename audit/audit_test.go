package audit_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/audit"
	"github.com/mirror-proxy/mirror-proxy/internal/faultstore"
	"github.com/mirror-proxy/mirror-proxy/storage"
	"github.com/mirror-proxy/mirror-proxy/storage/local"
)

func newStore(t *testing.T) storage.Store {
	st, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func keys(t *testing.T, st storage.Store, prefix string) []string {
	var out []string
	if err := st.List(context.Background(), prefix, func(i storage.Info) error { out = append(out, i.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// Events are logged at once and stored on Flush as one create-only
// object per day, named after the replica; Read gives them back, filtered.
func TestTrailStoresAndReads(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	var logged bytes.Buffer
	tr := audit.New(audit.Config{Replica: "r1", Log: slog.New(slog.NewTextHandler(&logged, nil)), Store: st, Prefix: "audit"})
	day1 := time.Date(2026, 12, 6, 23, 59, 0, 0, time.UTC)
	day2 := day1.Add(2 * time.Minute)
	tr.Record(audit.Event{Time: day1, Action: audit.Publish, Mirror: "npm", Package: "a", Version: "1.0.0", Outcome: audit.OK, Status: 201})
	tr.Record(audit.Event{Time: day2, Action: audit.Refuse, Mirror: "pypi", Package: "b", Version: "2", Outcome: audit.Denied, Status: 403, Reason: "deny"})
	if !strings.Contains(logged.String(), "action=publish") || !strings.Contains(logged.String(), "replica=r1") {
		t.Errorf("not logged at once:\n%s", logged.String())
	}
	if got := keys(t, st, "audit/"); len(got) != 0 {
		t.Fatalf("stored before Flush: %v", got)
	}
	if err := tr.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got := keys(t, st, "audit/")
	if len(got) != 2 || !strings.HasPrefix(got[0], "audit/2026/12/06/r1-") || !strings.HasPrefix(got[1], "audit/2026/12/07/r1-") {
		t.Fatalf("objects: %v", got)
	}
	now := day2.Add(time.Hour)
	all, err := audit.Read(ctx, st, "audit", audit.Filter{Since: day1.Add(-time.Hour)}, now)
	if err != nil || len(all) != 2 || all[0].Package != "a" || all[1].Reason != "deny" || all[0].Replica != "r1" {
		t.Fatalf("Read: %v %+v", err, all)
	}
	some, _ := audit.Read(ctx, st, "audit", audit.Filter{Since: day1.Add(-time.Hour), Mirror: "pypi"}, now)
	if len(some) != 1 || some[0].Package != "b" {
		t.Errorf("--mirror pypi: %+v", some)
	}
	some, _ = audit.Read(ctx, st, "audit", audit.Filter{Since: day2}, now)
	if len(some) != 1 || some[0].Package != "b" {
		t.Errorf("since day2: %+v", some)
	}
	// Nothing pending: a Flush writes nothing more.
	_ = tr.Flush(ctx)
	if n := len(keys(t, st, "audit/")); n != 2 {
		t.Errorf("an empty flush wrote: %d objects", n)
	}
}

// A write that fails is tried again under the same name; one that landed
// although it reported a failure (a timeout) is not written twice; a name
// another process took (same REPLICA_ID, same second) is left alone.
func TestTrailRetriesWithoutDuplicates(t *testing.T) {
	ctx := context.Background()
	for _, landed := range []bool{false, true} {
		base := newStore(t)
		fs := &faultstore.Store{Store: base, N: 1, Landed: landed, Prefix: "audit/"}
		tr := audit.New(audit.Config{Replica: "r1", Log: slog.New(slog.DiscardHandler), Store: fs, Prefix: "audit"})
		tr.Record(audit.Event{Action: audit.Publish, Package: "a", Outcome: audit.OK, Status: 201})
		if err := tr.Flush(ctx); err == nil {
			t.Fatalf("landed=%v: the injected failure was not reported", landed)
		}
		tr.Record(audit.Event{Action: audit.Yank, Package: "a", Outcome: audit.OK, Status: 200})
		if err := tr.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		evs, err := audit.Read(ctx, base, "audit", audit.Filter{Since: time.Now().Add(-time.Hour)}, time.Now())
		if err != nil || len(evs) != 2 {
			t.Fatalf("landed=%v: want each event once, got %v %+v", landed, err, evs)
		}
	}
	// Another process's object under the name this one would take.
	base := newStore(t)
	tr := audit.New(audit.Config{Replica: "r1", Log: slog.New(slog.DiscardHandler), Store: base, Prefix: "audit"})
	tr.Record(audit.Event{Action: audit.Publish, Package: "mine", Outcome: audit.OK, Status: 201})
	// Flush once into a scratch trail to learn the first name.
	probe := newStore(t)
	pt := audit.New(audit.Config{Replica: "r1", Log: slog.New(slog.DiscardHandler), Store: probe, Prefix: "audit"})
	pt.Record(audit.Event{Action: audit.Publish, Package: "theirs", Outcome: audit.OK, Status: 201})
	_ = pt.Flush(ctx)
	name := keys(t, probe, "audit/")[0]
	other := `{"time":"` + time.Now().UTC().Add(-time.Second).Format(time.RFC3339Nano) +
		`","replica":"r1","action":"publish","package":"theirs","outcome":"ok","status":201}` + "\n"
	if err := base.Put(ctx, name, strings.NewReader(other), storage.PutOptions{Size: int64(len(other)), CreateOnly: true}); err != nil {
		t.Fatal(err)
	}
	if err := tr.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	evs, _ := audit.Read(ctx, base, "audit", audit.Filter{Since: time.Now().Add(-48 * time.Hour)}, time.Now())
	pkgs := []string{}
	for _, e := range evs {
		pkgs = append(pkgs, e.Package)
	}
	if strings.Join(pkgs, ",") != "theirs,mine" {
		t.Errorf("events: %v (the other object must stay, ours beside it)", pkgs)
	}
}

// Close writes what is pending (shutdown).
func TestTrailCloseFlushes(t *testing.T) {
	st := newStore(t)
	tr := audit.New(audit.Config{Replica: "r1", Log: slog.New(slog.DiscardHandler), Store: st, Prefix: "audit", Flush: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { tr.Run(ctx); close(done) }()
	tr.Record(audit.Event{Action: audit.Auth, Outcome: audit.Denied, Status: 401})
	cancel()
	<-done
	if err := tr.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(keys(t, st, "audit/")); n != 1 {
		t.Errorf("objects after Close: %d", n)
	}
}
