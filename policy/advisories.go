package policy

import "sync/atomic"

// Advisor refuses the versions that known advisories name: the mirror's
// "advisories" policy (malware and vulnerabilities from OSV data, see
// package osv). Judge asks it after the deny rules, so what it refuses
// leaves the metadata and its files answer 403, as a denied version does.
type Advisor interface {
	// Names reports whether any advisory names the package.
	Names(name string) bool
	// Advise is what the policy says of name at one of versions (the
	// spellings of one version): nil when no advisory it blocks names it.
	// malwareOnly counts malware records only.
	Advise(name string, malwareOnly bool, versions ...string) *Advice
}

// Advice is an Advisor's word on one version.
type Advice struct {
	Name, Version string // as judged
	// Why is the refusal's message: each advisory's id, kind, summary
	// and link.
	Why string
	// IDs are the advisories' ids, comma-separated.
	IDs string
	// Reason is "malware" when any of them is, else the worst severity
	// among them (a bounded metric label).
	Reason string
	// Report: the policy is in report mode, so the version is served;
	// its files' responses name the advisories (X-Mirror-Advisory) and
	// each is logged.
	Report bool
}

// advisoryGen changes whenever advisory data changes: a form filtered
// with an Advisor holds only while it is the same.
var advisoryGen atomic.Uint64

// AdvisoriesChanged says the advisory data changed: every form filtered
// with it is made again.
func AdvisoriesChanged() { advisoryGen.Add(1) }

// AdvisoriesGeneration is the advisory data's generation: what was judged
// or served under another one may judge differently now.
func AdvisoriesGeneration() uint64 { return advisoryGen.Load() }

// AdvisoriesConfig is a mirror's "advisories" policy as configured: the
// kinds of records that block a version ("malware", "critical", "high",
// "medium", "low"), the advisory ids or aliases ignored, and report mode
// (log, refuse nothing).
type AdvisoriesConfig struct {
	Block, Ignore []string
	Report        bool
}
