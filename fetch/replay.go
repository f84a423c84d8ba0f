package fetch

import (
	"net/http"
	"time"

	"github.com/mirror-proxy/mirror-proxy/policy"
)

// A warm document's response may be sent again without running its
// handler: the server keeps it (headers rendered once, the body shared
// with the memory entry) and replays it to a request of the same shape
// while its guard holds. A handler opts in per response, with Replayable,
// only where the answer depends on nothing but the request's shape and one
// memory entry: no hosted packages, no snapshot, no stale copy, and no
// policy other than one whose filtering holds until a known time
// (ReplayableFiltered).
// (The server adds what it does per request: authorization, which
// replays are only made for routes that need none of, the request id,
// metrics and the request log.)

// ReplayGuard is what a replayed response stays true under: the memory
// entry Key, fresh for TTL, is still Entry, and (for a document filtered by
// a cooldown) Until has not come. A revalidation that finds the document
// unchanged keeps the entry; a changed one replaces it.
type ReplayGuard struct {
	Key   string
	TTL   time.Duration
	Entry *MetaEntry
	Until time.Time // zero: no limit
	// Also is the guard of a second entry the response comes from (npm's
	// full packument, whose publish times filter the abbreviated one).
	Also *ReplayGuard
	// advisories is the advisory data's generation when the response was
	// made: new data (an advisories policy may now filter what it did not)
	// ends every replay.
	advisories uint64
}

// Holds reports whether the response is still what its handler would
// send now.
func (g ReplayGuard) Holds(c *Core) bool {
	if !g.Until.IsZero() && !time.Now().Before(g.Until) || g.advisories != policy.AdvisoriesGeneration() {
		return false
	}
	res, ok := c.FreshInMemory(g.Key, g.TTL)
	return ok && res.Entry == g.Entry && (g.Also == nil || g.Also.Holds(c))
}

// ReplayRecorder is implemented by a response writer that can keep a
// response for replay (the server's, for requests it may replay).
type ReplayRecorder interface {
	// MarkReplayable says the response about to be written holds under g.
	MarkReplayable(g ReplayGuard)
	// ReplayBody gives the body of a 200 document response, as sent.
	ReplayBody(body []byte)
}

// Replayable marks the document response about to be written to w (with
// ServeDoc or ServeMeta) as one that holds while the memory entry key,
// fresh for ttl, is res's; a stale result is never replayed.
func Replayable(w http.ResponseWriter, key string, ttl time.Duration, res MetaResult) {
	if res.Stale || res.Entry == nil {
		return
	}
	if rr, ok := find[ReplayRecorder](w); ok {
		rr.MarkReplayable(ReplayGuard{Key: key, TTL: ttl, Entry: res.Entry, advisories: policy.AdvisoriesGeneration()})
	}
}

// ReplayFrom is a memory entry (Key, fresh for the mirror's TTL) that a
// response comes from, as Res found it.
type ReplayFrom struct {
	Key string
	Res MetaResult
}

// ReplayableFiltered is Replayable for a document filtered by policies
// (a cooldown, deny rules, advisories; never a snapshot's) from one or two
// entries (from), whose filtering holds under window: the response is
// replayed until the next held-back version comes of age, or the advisory
// data it was filtered with changes.
func ReplayableFiltered(w http.ResponseWriter, ttl time.Duration, window policy.Window, from ...ReplayFrom) {
	rr, ok := find[ReplayRecorder](w)
	if !ok || len(from) == 0 || len(from) > 2 {
		return
	}
	var g *ReplayGuard
	for i := len(from) - 1; i >= 0; i-- {
		f := from[i]
		if f.Res.Stale || f.Res.Entry == nil {
			return
		}
		g = &ReplayGuard{Key: f.Key, TTL: ttl, Entry: f.Res.Entry, Until: window.Next, Also: g, advisories: window.AdvisoriesGeneration()}
	}
	rr.MarkReplayable(*g)
}

func replayBody(w http.ResponseWriter, body []byte) {
	if rr, ok := find[ReplayRecorder](w); ok {
		rr.ReplayBody(body)
	}
}
