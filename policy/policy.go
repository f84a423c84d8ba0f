// Package policy decides what an organisation consumes from a mirror:
// the cooldown (versions younger than an age are hidden), allow and deny
// rules, and dated snapshots; Judge asks them all. Policies apply
// when a response is built, from the stored upstream truth, which they
// never change: a new policy takes effect at the next request.
package policy

import (
	"fmt"
	"path"
	"strings"
	"time"
)

// Cooldown hides versions and files published less than Age ago.
type Cooldown struct {
	Age time.Duration // 0: off
	// Exempt are name patterns (path.Match syntax on the ecosystem's
	// normalized names: "acme/*", "requests", "@acme/*") never held back.
	Exempt []string
	// AllowUnknown lets through what has no publish time (default: such
	// versions are hidden, as uv and pip do).
	AllowUnknown bool
}

// Active reports whether the cooldown hides anything of name.
func (c Cooldown) Active(name string) bool {
	if c.Age <= 0 {
		return false
	}
	for _, p := range c.Exempt {
		if ok, _ := path.Match(p, name); ok || p == name {
			return false
		}
	}
	return true
}

// Verdict is what a policy says of one version or file.
type Verdict struct {
	Hidden bool
	// Until is when it becomes visible (zero: never, for an unknown time).
	Until time.Time
	// Denied: a deny rule refuses it, for good. Where the client can be
	// told why without installing it (PyPI's yanked reason, Composer's
	// repository warnings), the ecosystem says so in its metadata.
	Denied bool
	// Advisory: an advisory refuses it (Denied is set too). An ecosystem
	// whose clients can be told why only by trying (npm) may keep the
	// version listed, marked, while its files answer 403.
	Advisory bool
	// Advice is the Advisor's word when one named the version, refusing
	// it (Advisory) or, in report mode, serving it; nil otherwise.
	Advice *Advice
	// Advised: advisory data took part (gen is its generation then): the
	// verdict holds only while the data is the same.
	Advised bool
	gen     uint64
	// Policy names what hid it ("snapshot", "cooldown", "deny",
	// "advisory"; "" : nothing), and Name and Version what was judged
	// (the audit trail records them).
	Policy        string
	Name, Version string
}

// Judge says whether something published at published (zero: unknown)
// is hidden at now.
func (c Cooldown) Judge(published, now time.Time) Verdict {
	if published.IsZero() {
		return Verdict{Hidden: !c.AllowUnknown}
	}
	until := published.Add(c.Age)
	if now.Before(until) {
		return Verdict{Hidden: true, Until: until}
	}
	return Verdict{}
}

// Reason is the message of a refused download.
func (c Cooldown) Reason(what string, v Verdict) string {
	if v.Until.IsZero() {
		return fmt.Sprintf("%s is held back by the mirror's cooldown policy: it has no publish time, and versions without one are not served (cooldownUnknown)", what)
	}
	return fmt.Sprintf("%s is held back by the mirror's %s cooldown policy until %s", what, Duration(c.Age), v.Until.UTC().Format(time.RFC3339))
}

// Window tracks, while a document is filtered, the earliest moment its
// filtered form changes (a hidden version comes of age).
type Window struct {
	Next time.Time
	// advised: advisory data took part, at generation gen.
	advised bool
	gen     uint64
}

// Add notes a verdict.
func (w *Window) Add(v Verdict) {
	if v.Hidden && !v.Until.IsZero() && (w.Next.IsZero() || v.Until.Before(w.Next)) {
		w.Next = v.Until
	}
	if v.Advised && !w.advised {
		w.advised, w.gen = true, v.gen
	}
}

// Valid reports whether a form filtered under w still holds at now (and
// the advisory data it was filtered with has not changed).
func (w Window) Valid(now time.Time) bool {
	return (w.Next.IsZero() || now.Before(w.Next)) && (!w.advised || w.gen == advisoryGen.Load())
}

// Advised reports whether advisory data took part in the form: it holds
// only until that data changes, at no known time.
func (w Window) Advised() bool { return w.advised }

// AdvisoriesGeneration is the advisory data's generation a form filtered
// under w holds for: the one it was filtered with, or the current one when
// advisory data took no part (a change then matters only to forms made
// after it).
func (w Window) AdvisoriesGeneration() uint64 {
	if w.advised {
		return w.gen
	}
	return advisoryGen.Load()
}

// ParseDuration reads "3d", "12h", "90m" (Go durations plus days).
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if d, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		if _, err := fmt.Sscanf(d, "%d", &n); err != nil || n < 0 || fmt.Sprint(n) != d {
			return 0, fmt.Errorf("%q is not a duration (examples: 3d, 36h)", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a duration (examples: 3d, 36h)", s)
	}
	return d, nil
}

// Duration writes d as days when it is whole days.
func Duration(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

// AsOf judges a version under a snapshot: hidden when published after
// cutoff, or when its publish time is unknown (unless allowUnknown).
func AsOf(published, cutoff time.Time, allowUnknown bool) (string, Verdict) {
	if published.IsZero() {
		if allowUnknown {
			return "", Verdict{}
		}
		return "it has no publish time, so the snapshot cannot include it", Verdict{Hidden: true}
	}
	if published.After(cutoff) {
		return "it was published on " + published.UTC().Format("2006-01-02") + ", after the snapshot's date", Verdict{Hidden: true}
	}
	return "", Verdict{}
}
