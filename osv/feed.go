package osv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mirror-proxy/mirror-proxy/policy"
	"github.com/mirror-proxy/mirror-proxy/storage"
)

// maxZipBytes bounds an export as stored and read (npm's is a few
// hundred MB).
const maxZipBytes = 2 << 30

// Key is where the export of ecosystem is stored under prefix
// (<meta prefix>/osv).
func Key(prefix, ecosystem string) string { return storage.Join(prefix, ecosystem, "all.zip") }

// Progress hears how an Import goes; a nil field is not told.
type Progress struct {
	// Checked: done of total files of the zip are read and valid.
	Checked func(done, total int)
	// Storing wraps the body as it is stored (a byte counter).
	Storing func(body io.Reader, size int64) io.Reader
}

// Import validates the export at path and stores it for ecosystem, where
// every replica's Feed loads it (air-gapped sites: mirror-proxy osv
// import). It returns how many records of the ecosystem it holds.
func Import(ctx context.Context, st storage.Store, prefix, ecosystem, path string, p Progress) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	ix, err := readZip(f, fi.Size(), ecosystem, nil, p.Checked)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	if ix.Records == 0 {
		return 0, fmt.Errorf("%s: no %s records (is it the export of another ecosystem?)", path, ecosystem)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	var body io.Reader = f
	if p.Storing != nil {
		body = p.Storing(f, fi.Size())
	}
	if err := st.Put(ctx, Key(prefix, ecosystem), body, storage.PutOptions{Size: fi.Size(), ContentType: "application/zip"}); err != nil {
		return 0, err
	}
	return ix.Records, nil
}

// Feed keeps the index of each ecosystem's export in storage, loading it
// again when it changes (checked every refresh), off the request path.
type Feed struct {
	store      storage.Store
	prefix     string
	ecosystems []string
	refresh    time.Duration
	log        *slog.Logger

	mu     sync.RWMutex
	idx    map[string]*Index
	etag   map[string]string
	stored map[string]time.Time // the loaded export's time in storage

	normalize map[string]func(string) string // set by Follow, before Run

	// Fetching from OSV (FetchFrom): its base URL, the client, and the
	// replicas' lease (nil: every replica fetches).
	url    string
	client *http.Client
	lease  Leaser
}

// Leaser takes a lease that one replica holds at a time (Redis).
type Leaser interface {
	TryLease(ctx context.Context, name string, ttl time.Duration) (release func(), ok bool, err error)
}

// FetchFrom makes the feed fetch each ecosystem's export from base
// (<base>/<Ecosystem>/all.zip) when the one in storage is older than the
// refresh interval (or missing), check it whole and store it, one replica
// at a time when lease is set; every replica then loads it. Call before
// Run.
func (f *Feed) FetchFrom(base string, client *http.Client, lease Leaser) {
	f.url, f.client, f.lease = strings.TrimRight(base, "/"), client, lease
}

// fetch stores a fresh export of eco from the OSV URL when the stored one
// is missing or older than the refresh interval.
func (f *Feed) fetch(ctx context.Context, eco string) error {
	key := Key(f.prefix, eco)
	if info, err := f.store.Stat(ctx, key); err == nil && time.Since(info.ModTime) < f.refresh {
		return nil
	}
	if f.lease != nil {
		release, ok, err := f.lease.TryLease(ctx, "osv-fetch:"+eco, 10*time.Minute)
		if err == nil && !ok {
			return nil // another replica fetches
		}
		if release != nil {
			defer release()
		}
	}
	u := f.url + "/" + eco + "/all.zip"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return fmt.Errorf("fetching %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetching %s: %s", u, resp.Status)
	}
	tmp, err := os.CreateTemp("", "osv-fetch-*.zip")
	if err != nil {
		return err
	}
	os.Remove(tmp.Name())
	defer tmp.Close()
	n, err := io.Copy(tmp, io.LimitReader(resp.Body, maxZipBytes+1))
	if err != nil {
		return fmt.Errorf("fetching %s: %w", u, err)
	}
	if n > maxZipBytes {
		return fmt.Errorf("%s is larger than %d bytes", u, int64(maxZipBytes))
	}
	ix, err := ReadZip(tmp, n, eco, nil)
	if err != nil {
		return fmt.Errorf("%s: %w (the data in storage stays as it was)", u, err)
	}
	if ix.Records == 0 {
		return fmt.Errorf("%s holds no %s records (the data in storage stays as it was)", u, eco)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := f.store.Put(ctx, key, tmp, storage.PutOptions{Size: n, ContentType: "application/zip"}); err != nil {
		return err
	}
	f.log.Info("OSV data fetched and stored", "ecosystem", eco, "records", ix.Records, "url", u)
	return nil
}

// NewFeed follows the exports of ecosystems under prefix in st.
func NewFeed(st storage.Store, prefix string, ecosystems []string, refresh time.Duration, log *slog.Logger) *Feed {
	return &Feed{store: st, prefix: prefix, ecosystems: ecosystems, refresh: refresh, log: log,
		idx: map[string]*Index{}, etag: map[string]string{},
		stored: map[string]time.Time{}, normalize: map[string]func(string) string{}}
}

// Follow adds ecosystem to those the feed loads (before Run), its
// package names mapped by normalize (nil: as given).
func (f *Feed) Follow(ecosystem string, normalize func(string) string) {
	for _, e := range f.ecosystems {
		if e == ecosystem {
			return
		}
	}
	f.ecosystems = append(f.ecosystems, ecosystem)
	f.normalize[ecosystem] = normalize
}

// Run loads every export now, then whenever it changes, until ctx ends.
func (f *Feed) Run(ctx context.Context) {
	for {
		for _, eco := range f.ecosystems {
			if f.url != "" {
				if err := f.fetch(ctx, eco); err != nil && ctx.Err() == nil {
					f.log.Warn("OSV data not fetched; the data in storage stays in force", "ecosystem", eco, "err", err)
				}
			}
			if err := f.load(ctx, eco); err != nil && ctx.Err() == nil {
				f.log.Warn("OSV data not loaded; the previous data stays in force", "ecosystem", eco, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(f.refresh):
		}
	}
}

// Records is how many records ecosystem's loaded data holds.
func (f *Feed) Records(ecosystem string) int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if ix := f.idx[ecosystem]; ix != nil {
		return ix.Records
	}
	return 0
}

// Age is how old the loaded data of ecosystem is: since it was stored
// (imported); -1: none loaded.
func (f *Feed) Age(ecosystem string) time.Duration {
	f.mu.RLock()
	defer f.mu.RUnlock()
	t, ok := f.stored[ecosystem]
	if !ok {
		return -1
	}
	return time.Since(t)
}

// Ecosystems are the ecosystems the feed follows.
func (f *Feed) Ecosystems() []string { return f.ecosystems }

// Index is the loaded index of ecosystem (nil: none yet).
func (f *Feed) Index(ecosystem string) *Index {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.idx[ecosystem]
}

// load reads ecosystem's export when it changed since the last load.
func (f *Feed) load(ctx context.Context, eco string) error {
	key := Key(f.prefix, eco)
	info, err := f.store.Stat(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		if f.Index(eco) == nil {
			f.log.Warn("advisories are configured but there is no OSV data yet: nothing is blocked until it is imported (mirror-proxy osv import)", "ecosystem", eco, "key", key)
		}
		return nil
	}
	if err != nil {
		return err
	}
	f.mu.RLock()
	same := f.etag[eco] == info.ETag && info.ETag != ""
	f.mu.RUnlock()
	if same {
		return nil
	}
	if info.Size > maxZipBytes {
		return fmt.Errorf("%s is %d bytes, more than %d", key, info.Size, int64(maxZipBytes))
	}
	rc, info, err := f.store.Get(ctx, key, storage.Whole)
	if err != nil {
		return err
	}
	defer rc.Close()
	tmp, err := os.CreateTemp("", "osv-*.zip")
	if err != nil {
		return err
	}
	os.Remove(tmp.Name()) // unlinked: gone with the file
	defer tmp.Close()
	n, err := io.Copy(tmp, io.LimitReader(rc, maxZipBytes+1))
	if err != nil {
		return err
	}
	start := time.Now()
	ix, err := ReadZip(tmp, n, eco, f.normalize[eco])
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	f.mu.Lock()
	f.idx[eco], f.etag[eco], f.stored[eco] = ix, info.ETag, info.ModTime
	f.mu.Unlock()
	policy.AdvisoriesChanged()
	f.log.Info("OSV data loaded", "ecosystem", eco, "records", ix.Records, "names", ix.Names(), "took_ms", time.Since(start).Milliseconds())
	return nil
}

// Policy is a mirror's "advisories" policy over a Feed: it refuses the
// versions that records it blocks (malware, or one of the severities)
// name, unless ignored by id or alias; in report mode it only says so.
type Policy struct {
	feed      *Feed
	ecosystem string
	cmp       Compare
	block     map[string]bool
	ignore    map[string]bool
	report    bool
}

// NewPolicy judges ecosystem's versions (ordered by cmp) with the feed:
// block holds "malware" and severities, ignore advisory ids or aliases;
// report serves what it would refuse (the mirror logs and marks it).
func NewPolicy(feed *Feed, ecosystem string, cmp Compare, block, ignore []string, report bool) *Policy {
	p := &Policy{feed: feed, ecosystem: ecosystem, cmp: cmp, block: map[string]bool{}, ignore: map[string]bool{}, report: report}
	for _, b := range block {
		p.block[strings.ToLower(b)] = true
	}
	for _, i := range ignore {
		p.ignore[i] = true
	}
	return p
}

var _ policy.Advisor = (*Policy)(nil)

// Names implements policy.Advisor.
func (p *Policy) Names(name string) bool {
	ix := p.feed.Index(p.ecosystem)
	return ix != nil && len(ix.byName[name]) > 0
}

// Advise implements policy.Advisor: the first of versions that records
// the policy blocks name (not ignored; malware only if malwareOnly) gets
// an Advice naming them all.
func (p *Policy) Advise(name string, malwareOnly bool, versions ...string) *policy.Advice {
	ix := p.feed.Index(p.ecosystem)
	if ix == nil {
		return nil
	}
	for _, v := range versions {
		var hit []*Advisory
		for _, a := range ix.Match(name, v, p.cmp) {
			if p.ignored(a) || !(p.block["malware"] && a.Malware || !malwareOnly && p.block[a.Severity]) {
				continue
			}
			hit = append(hit, a)
		}
		if len(hit) == 0 {
			continue
		}
		var parts []string
		reason := ""
		for _, a := range hit {
			what := a.Severity
			if a.Malware {
				what = "malware"
			}
			if what == "malware" || reason != "malware" && severityRank[what] > severityRank[reason] {
				reason = what
			}
			parts = append(parts, fmt.Sprintf("%s (%s: %s) %s", a.ID, what, a.Summary, a.Link()))
		}
		return &policy.Advice{Name: name, Version: v, IDs: ids(hit), Reason: reason, Report: p.report,
			Why: fmt.Sprintf("%s@%s is blocked by the mirror's advisories policy: %s", name, v, strings.Join(parts, "; "))}
	}
	return nil
}

// severityRank orders severities, worst last.
var severityRank = map[string]int{"low": 1, "medium": 2, "high": 3, "critical": 4}

func (p *Policy) ignored(a *Advisory) bool {
	if p.ignore[a.ID] {
		return true
	}
	for _, al := range a.Aliases {
		if p.ignore[al] {
			return true
		}
	}
	return false
}

func ids(as []*Advisory) string {
	var s []string
	for _, a := range as {
		s = append(s, a.ID)
	}
	return strings.Join(s, ",")
}

// Audit returns the advisories affecting name at any of versions (nil:
// all of its advisories),
// whatever the policy blocks (what an audit command reports); ignored
// ones are left out.
func (p *Policy) Audit(name string, versions []string) []Finding {
	ix := p.feed.Index(p.ecosystem)
	if ix == nil {
		return nil
	}
	var out []Finding
	for _, f := range ix.Audit(name, versions, p.cmp) {
		if !p.ignored(f.Advisory) {
			out = append(out, f)
		}
	}
	return out
}
