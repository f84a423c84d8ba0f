package policy

import (
	"net/http"
	"time"
)

// Judged is one version or file that a mirror's policies judge.
type Judged struct {
	Name      string    // the package, as the rules name it
	What      string    // how messages name it ("acme/foo 1.1.0", a file name)
	Published time.Time // zero: unknown
	Versions  []string  // the spellings of its version that a deny rule may use
}

// Judge says why j is not served for r ("" : it is), and the verdict. A
// dated snapshot and the cooldown are asked first: what they hide is left
// out, whatever the rules say. A deny rule (rules are the mirror's, with
// names normalized as the ecosystem does) gives a Denied verdict, which an
// ecosystem may show its clients (a yanked reason, a warning). Every
// ecosystem judges with this one function, so policies mean the same
// everywhere.
func Judge(r *http.Request, cooldown Cooldown, rules Rules, j Judged, now time.Time) (string, Verdict) {
	gen := advisoryGen.Load() // before judging: a change meanwhile makes the verdict stale
	why, v := judge(r, cooldown, rules, j, now)
	v.Name = j.Name
	if len(j.Versions) > 0 {
		v.Version = j.Versions[0]
	}
	if rules.Advisor != nil {
		v.Advised, v.gen = true, gen
	}
	return why, v
}

func judge(r *http.Request, cooldown Cooldown, rules Rules, j Judged, now time.Time) (string, Verdict) {
	if cutoff, ok := Snapshot(r); ok {
		if why, v := AsOf(j.Published, cutoff, cooldown.AllowUnknown); v.Hidden {
			v.Policy = "snapshot"
			return j.What + " is not in this snapshot: " + why, v
		}
	}
	var v Verdict
	if cooldown.Active(j.Name) {
		if v = cooldown.Judge(j.Published, now); v.Hidden {
			v.Policy = "cooldown"
			return cooldown.Reason(j.What, v), v
		}
	}
	if why := rules.DenyVersion(j.Name, j.Versions...); why != "" {
		return why, Verdict{Hidden: true, Denied: true, Policy: "deny"}
	}
	if rules.Advisor != nil {
		if a := rules.Advisor.Advise(j.Name, false, j.Versions...); a != nil {
			if a.Report {
				v.Advice = a // served: the file's response says so
				return "", v
			}
			return a.Why, Verdict{Hidden: true, Denied: true, Advisory: true, Advice: a, Policy: "advisory"}
		}
	}
	return "", v
}

// JudgeHosted says why a published (hosted) file of name at one of
// versions is not served ("" : it is), and the verdict. Only malware
// records count: an advisory about the public package of the same name is
// not about the private one, but a published file that known malware of
// that name and version matches is refused (a stolen token, a poisoned
// build). Cooldown, deny rules and snapshots do not apply to hosted
// packages.
func JudgeHosted(rules Rules, name string, versions ...string) (string, Verdict) {
	if rules.Advisor == nil {
		return "", Verdict{}
	}
	a := rules.Advisor.Advise(name, true, versions...)
	switch {
	case a == nil:
		return "", Verdict{}
	case a.Report:
		return "", Verdict{Advice: a}
	}
	return a.Why, Verdict{Hidden: true, Denied: true, Advisory: true, Advice: a, Policy: "advisory",
		Name: name, Version: a.Version}
}
