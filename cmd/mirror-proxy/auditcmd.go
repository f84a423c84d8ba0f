package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mirror-proxy/mirror-proxy/audit"
	"github.com/mirror-proxy/mirror-proxy/policy"
)

const auditUsage = `usage: mirror-proxy audit [--since 24h] [--mirror M] [--package P] [--json]

Lists the audit trail kept under AUDIT_PREFIX, oldest first: every publish, delete and yank, every
request a policy refused, every failed authentication and every use of a token on a write route,
from every replica. --since takes a duration (24h, 7d) or a date (2026-12-01, RFC 3339); default
24h. --json prints one JSON object per line, as stored. Configured by the same environment as serve.
`

func auditCommand(args []string, stdout io.Writer) int {
	since, mirrorName, pkg, asJSON := "24h", "", "", false
	for i := 0; i < len(args); i++ {
		a := args[i]
		val := func() (string, bool) {
			if k, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(k, "--") {
				return v, true
			}
			if i+1 < len(args) {
				i++
				return args[i], true
			}
			return "", false
		}
		flag, _, _ := strings.Cut(a, "=")
		var ok bool
		switch flag {
		case "--since":
			since, ok = val()
		case "--mirror":
			mirrorName, ok = val()
		case "--package":
			pkg, ok = val()
		case "--json":
			asJSON, ok = true, true
		case "-h", "--help", "help":
			fmt.Fprint(stdout, auditUsage)
			return 0
		}
		if !ok {
			fmt.Fprintf(os.Stderr, "mirror-proxy audit: %q: unknown or incomplete argument\n\n%s", a, auditUsage)
			return 2
		}
	}
	now := time.Now()
	from, err := parseSince(since, now)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mirror-proxy audit: --since:", err)
		return 2
	}
	cfg, err := LoadConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mirror-proxy:", err)
		return 2
	}
	if cfg.AuditPrefix == "" {
		fmt.Fprintln(os.Stderr, "mirror-proxy audit: AUDIT_PREFIX is not set: the replicas keep no trail in storage (their audit events are only logged)")
		return 2
	}
	cfg.LogLevel = "warn"
	ctx := context.Background()
	st, err := configuredStore(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mirror-proxy audit:", err)
		return 1
	}
	events, err := audit.Read(ctx, st, cfg.AuditPrefix, audit.Filter{Since: from, Mirror: mirrorName, Package: pkg}, now)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mirror-proxy audit:", err)
		return 1
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		for _, e := range events {
			_ = enc.Encode(e)
		}
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tREPLICA\tACTION\tOUTCOME\tSTATUS\tMIRROR\tPACKAGE\tVERSION\tTOKEN\tCLIENT\tREASON")
	for _, e := range events {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.UTC().Format(time.RFC3339), e.Replica,
			e.Action, e.Outcome, e.Status, dash(e.Mirror), dash(e.Package), dash(e.Version), dash(e.Token), dash(e.Client),
			dash(oneLine(e.Reason)))
	}
	tw.Flush()
	return 0
}

// parseSince reads --since: a duration before now (24h, 7d) or a date.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := policy.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is neither a duration (24h, 7d) nor a date (2026-12-01)", s)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
