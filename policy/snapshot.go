package policy

import (
	"context"
	"net/http"
	"strings"
	"time"
)

// Dated snapshots: /<mirror>/@2025-06-01/... serves every route of the
// mirror as of the end of that UTC day. The server takes the segment out
// of the path before routing (so each ecosystem's routes serve both) and
// keeps it in the request's context; ecosystems filter what was published
// after the cutoff (Judge), and write URLs for clients under the same
// snapshot (httpx.MountPrefix).

type snapshotKey struct{}

type snapshot struct {
	segment string    // "@2025-06-01"
	cutoff  time.Time // the end of that UTC day
}

// ParseSnapshot reads a snapshot segment ("@2025-06-01"); ok is false for
// anything else (an npm scope, say).
func ParseSnapshot(seg string) (cutoff time.Time, ok bool) {
	if len(seg) != 11 || seg[0] != '@' {
		return time.Time{}, false
	}
	t, err := time.Parse("2006-01-02", seg[1:])
	if err != nil {
		return time.Time{}, false
	}
	return t.Add(24*time.Hour - time.Nanosecond), true
}

// WithSnapshot marks a request as made under a snapshot.
func WithSnapshot(r *http.Request, segment string, cutoff time.Time) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), snapshotKey{}, snapshot{segment, cutoff}))
}

// Snapshot returns the cutoff of a request made under a snapshot.
func Snapshot(r *http.Request) (cutoff time.Time, ok bool) {
	s, ok := r.Context().Value(snapshotKey{}).(snapshot)
	return s.cutoff, ok
}

// SnapshotDay is the day of the request's snapshot ("" : none), a key for
// what is filtered under it.
func SnapshotDay(r *http.Request) string {
	s, _ := r.Context().Value(snapshotKey{}).(snapshot)
	return strings.TrimPrefix(s.segment, "@")
}
