package policy

import "sync/atomic"

// Advisor refuses the versions that known advisories name: the mirror's
// "advisories" policy (malware and vulnerabilities from OSV data, see
// package osv). It is consulted with the deny rules (Rules.DenyVersion),
// so what it refuses leaves the metadata and its files answer 403, as a
// denied version does.
type Advisor interface {
	// Names reports whether any advisory names the package.
	Names(name string) bool
	// Refuse says why name at one of versions (the spellings of one
	// version) is refused ("" : it is not).
	Refuse(name string, versions ...string) string
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
