package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/mirror-proxy/mirror-proxy/access"
	"github.com/mirror-proxy/mirror-proxy/proxy"
	"github.com/mirror-proxy/mirror-proxy/storage"
)

const gcUsage = `usage: mirror-proxy gc --mirror NAME --unused-for AGE [--keep FILE...] [--yes]

Deletes the mirrored files of mirror NAME that no replica has served for AGE ("180d", "36h";
at least 1d): a file's last use is the last day the access records (written by every replica,
see ACCESS_FLUSH_INTERVAL) say it was served, else the day it was stored. Published packages
and metadata are never deleted. --keep protects every file the lock files pin (composer.lock,
requirements.txt, pylock.toml, package-lock.json): they are fetched through the proxy, as
prefetch does, which records them as used today. Without --yes it only reports what it would
delete. With --yes it waits for every replica's latest records, then deletes; an interrupted
run is resumed by running it again. Configured by the same environment as serve.
`

// parseAge reads "180d" (days) or a Go duration.
func parseAge(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("--unused-for %q: not a number of days", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("--unused-for %q: not a duration (180d, 36h)", s)
	}
	return d, nil
}

type gcArgs struct {
	mirror string
	age    time.Duration
	keep   []string
	yes    bool
}

func parseGCArgs(args []string) (gcArgs, error) {
	var a gcArgs
	var err error
	for i := 0; i < len(args); i++ {
		arg, val, hasVal := strings.Cut(args[i], "=")
		next := func() string {
			if hasVal {
				return val
			}
			if i+1 < len(args) {
				i++
				return args[i]
			}
			return ""
		}
		switch arg {
		case "--mirror":
			a.mirror = next()
		case "--unused-for":
			if a.age, err = parseAge(next()); err != nil {
				return a, err
			}
		case "--keep":
			a.keep = append(a.keep, next())
		case "--yes":
			a.yes = true
		case "--dry-run":
			a.yes = false
		default:
			if strings.HasPrefix(arg, "-") {
				return a, fmt.Errorf("unknown option %q", args[i])
			}
			a.keep = append(a.keep, args[i]) // more lock files after --keep
		}
	}
	switch {
	case a.mirror == "":
		return a, errors.New("--mirror is required")
	case a.age == 0:
		return a, errors.New("--unused-for is required")
	case a.age < 24*time.Hour:
		return a, fmt.Errorf("--unused-for %v: at least 1d (a file is recorded once per day)", a.age)
	}
	return a, nil
}

func gc(args []string, out io.Writer) int {
	a, err := parseGCArgs(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "mirror-proxy gc: %v\n\n%s", err, gcUsage)
		return 2
	}
	cfg, err := LoadConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mirror-proxy:", err)
		return 2
	}
	typ := ""
	for _, m := range cfg.Mirrors {
		if m.Name == a.mirror {
			typ = m.Type
		}
	}
	if typ == "" {
		fmt.Fprintf(os.Stderr, "mirror-proxy gc: no mirror named %q in MIRRORS\n", a.mirror)
		return 2
	}
	var keep []item
	for _, f := range a.keep {
		its, err := readLock(f, typ)
		if err != nil {
			fmt.Fprintln(os.Stderr, "mirror-proxy gc:", err)
			return 2
		}
		keep = append(keep, its...)
	}
	cfg.LogLevel = "warn"
	log := newLogger(cfg)
	slog.SetDefault(log)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	status := 0
	err = withServer(ctx, cfg, log, func(srv *proxy.Server, st storage.Store) error {
		if len(keep) > 0 {
			if n := keepFiles(ctx, srv, a.mirror, keep); n > 0 {
				return fmt.Errorf("%d of the files to keep could not be fetched: nothing deleted", n)
			}
		}
		var err error
		status, err = collect(ctx, cfg, st, a, out)
		return err
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "mirror-proxy gc:", err)
		return 1
	}
	return status
}

// keepFiles fetches what the lock files pin through the proxy, which
// records each file as used today; it returns how many failed.
func keepFiles(ctx context.Context, srv *proxy.Server, mirror string, items []item) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return len(items)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, l, time.Minute) }()
	failed := run(ctx, "http://"+l.Addr().String()+"/"+mirror, items)
	cancel()
	<-done // the server's stop writes its access record
	return failed
}

// candidate is a stored file that may go.
type candidate struct {
	key  string
	size int64
}

// collect finds the files unused for a.age and, with a.yes, deletes them.
func collect(ctx context.Context, cfg *Config, st storage.Store, a gcArgs, out io.Writer) (int, error) {
	recs := storage.Join(cfg.MetaPrefix, "access")
	now := time.Now()
	cutoff := now.Add(-a.age)
	since := access.Day(cutoff)
	cands, kept, err := scan(ctx, st, storage.Join(cfg.DistPrefix, a.mirror)+"/", recs, since, cutoff)
	if err != nil {
		return 1, err
	}
	var bytes int64
	for _, c := range cands {
		bytes += c.size
	}
	if !a.yes {
		fmt.Fprintf(out, "gc %s: %d files (%s) unused since %s would be deleted; %d kept. Nothing deleted: run with --yes to delete.\n",
			a.mirror, len(cands), humanBytes(bytes), since, kept)
		for i, c := range cands {
			if i == 20 {
				fmt.Fprintf(out, "  ... and %d more\n", len(cands)-20)
				break
			}
			fmt.Fprintln(out, "  "+c.key)
		}
		return 0, nil
	}
	// Replicas write what they served every ACCESS_FLUSH_INTERVAL: wait
	// for their latest records, then spare what they say was used.
	wait := 2*cfg.AccessFlush + 2*time.Second
	fmt.Fprintf(os.Stderr, "gc %s: %d candidates; waiting %v for every replica's latest access records\n", a.mirror, len(cands), wait)
	select {
	case <-time.After(wait):
	case <-ctx.Done():
		return 1, ctx.Err()
	}
	used, err := access.Read(ctx, st, recs, since)
	if err != nil {
		return 1, err
	}
	bar := progressbar.NewOptions(len(cands), progressbar.OptionSetDescription("gc "+a.mirror),
		progressbar.OptionSetWriter(os.Stderr), progressbar.OptionShowCount(), progressbar.OptionClearOnFinish())
	var deleted, spared, failed int
	bytes = 0
	for _, c := range cands {
		if ctx.Err() != nil {
			break
		}
		_ = bar.Add(1)
		if _, ok := used[c.key]; ok {
			spared++
			continue
		}
		if err := st.Delete(ctx, c.key); err != nil && !errors.Is(err, storage.ErrNotFound) {
			failed++
			fmt.Fprintf(os.Stderr, "gc: %s: %v\n", c.key, err)
			continue
		}
		deleted++
		bytes += c.size
	}
	_ = bar.Finish()
	fmt.Fprintf(out, "gc %s: %d files (%s) deleted, unused since %s; %d kept (%d of them served while gc ran), %d failed\n",
		a.mirror, deleted, humanBytes(bytes), since, kept+spared, spared, failed)
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "gc: interrupted; run it again to go on")
		return 1, nil
	}
	if failed > 0 {
		return 1, nil
	}
	return 0, nil
}

// scan lists the files under prefix: those used on since or later (by the
// access records under recs) or stored after cutoff are kept.
func scan(ctx context.Context, st storage.Store, prefix, recs, since string, cutoff time.Time) ([]candidate, int, error) {
	used, err := access.Read(ctx, st, recs, since)
	if err != nil {
		return nil, 0, err
	}
	bar := progressbar.NewOptions(-1, progressbar.OptionSetDescription("scanning "+prefix),
		progressbar.OptionSetWriter(os.Stderr), progressbar.OptionShowCount(), progressbar.OptionClearOnFinish())
	var cands []candidate
	kept := 0
	err = st.List(ctx, prefix, func(i storage.Info) error {
		_ = bar.Add(1)
		if _, ok := used[i.Key]; ok || i.ModTime.After(cutoff) {
			kept++
			return nil
		}
		cands = append(cands, candidate{i.Key, i.Size})
		return nil
	})
	_ = bar.Finish()
	sort.Slice(cands, func(i, j int) bool { return cands[i].key < cands[j].key })
	return cands, kept, err
}

// humanBytes is n in the largest binary unit that keeps it above 1.
func humanBytes(n int64) string {
	f := float64(n)
	for _, u := range []string{"B", "KiB", "MiB", "GiB"} {
		if f < 1024 {
			return strconv.FormatFloat(f, 'f', 1, 64) + " " + u
		}
		f /= 1024
	}
	return strconv.FormatFloat(f, 'f', 1, 64) + " TiB"
}
