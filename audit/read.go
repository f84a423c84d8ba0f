package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/mirror-proxy/mirror-proxy/storage"
)

// Filter selects events (zero fields select everything).
type Filter struct {
	Since   time.Time
	Mirror  string
	Package string
}

func (f Filter) match(e Event) bool {
	return !e.Time.Before(f.Since) && (f.Mirror == "" || e.Mirror == f.Mirror) &&
		(f.Package == "" || e.Package == f.Package)
}

// Read gives the stored events that f selects, oldest first, reading the
// day folders from f.Since to now (it lists storage: maintenance, never
// the request path).
func Read(ctx context.Context, store storage.Store, prefix string, f Filter, now time.Time) ([]Event, error) {
	var out []Event
	first := f.Since.UTC().Truncate(24 * time.Hour)
	if f.Since.IsZero() {
		first = now.UTC().Truncate(24*time.Hour).AddDate(0, 0, -31)
	}
	for day := first; !day.After(now.UTC()); day = day.AddDate(0, 0, 1) {
		dir := prefix + "/" + day.Format("2006/01/02") + "/"
		var keys []string
		if err := store.List(ctx, dir, func(i storage.Info) error {
			if strings.HasSuffix(i.Key, ".jsonl") {
				keys = append(keys, i.Key)
			}
			return nil
		}); err != nil {
			return nil, fmt.Errorf("listing %s: %w", dir, err)
		}
		for _, k := range keys {
			evs, err := readObject(ctx, store, k)
			if err != nil {
				return nil, err
			}
			for _, e := range evs {
				if f.match(e) {
					out = append(out, e)
				}
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, nil
}

func readObject(ctx context.Context, store storage.Store, key string) ([]Event, error) {
	rc, _, err := store.Get(ctx, key, storage.Whole)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", key, err)
	}
	defer rc.Close()
	var out []Event
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", key, line, err)
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", key, err)
	}
	return out, nil
}
