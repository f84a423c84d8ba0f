package conda

import (
	"bytes"
	"compress/bzip2"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/mirror-proxy/mirror-proxy/fetch"
	"github.com/mirror-proxy/mirror-proxy/hosted"
	"github.com/mirror-proxy/mirror-proxy/httpx"
	"github.com/mirror-proxy/mirror-proxy/mirror"
	"github.com/mirror-proxy/mirror-proxy/policy"
	"github.com/mirror-proxy/mirror-proxy/storage"
)

func init() {
	mirror.Register(mirror.Type{
		Client: func(u string) string {
			return "conda config --add channels " + u + "\n# or, once: conda install -c " + u + " --override-channels numpy"
		},
		Name:       "conda",
		DefaultURL: "https://conda.anaconda.org/conda-forge",
		// conda-forge's indexes change every few minutes; rattler-index
		// serves them with max-age=300.
		DefaultTTL: 5 * time.Minute,
		Hosts:      true,
		New:        newMirror,
	})
}

// condaMirror serves one channel under /N/:
//
//	/N/channeldata.json
//	/N/<subdir>/repodata.json[.zst|.bz2], current_repodata.json   indexes (mutable)
//	/N/<subdir>/repodata_shards.msgpack.zst                        CEP-16 shard index (mutable)
//	/N/<subdir>/shards/<sha256>.msgpack.zst                        shards (immutable, verified)
//	/N/<subdir>/<name>-<version>-<build>.conda|.tar.bz2            packages (sha256-verified)
//
// and, when hosted, PUT /N/<subdir>/<file> of a package, indexed by the
// proxy.
type condaMirror struct {
	env     *mirror.Env
	m       fetch.Mirror
	client  *http.Client
	repo    *hosted.Repo
	derived fetch.Derived // indexes rewritten, filtered or merged with hosted packages
}

var _ mirror.Ecosystem = (*condaMirror)(nil)

func newMirror(env *mirror.Env) mirror.Ecosystem {
	return &condaMirror{env: env, m: env.Mirror, client: env.Client, repo: env.Repo}
}

// Routes registers the mirror's routes.
func (cm *condaMirror) Routes(rt mirror.Router) {
	rt.Read("/channeldata.json", cm.channeldata)
	rt.Read("/{subdir}/{file}", cm.subdirFile)
	rt.Read("/{subdir}/shards/{file}", cm.shard)
	if cm.repo != nil {
		rt.Write(http.MethodPut, "/{subdir}/{file}", cm.upload)
	}
}

var (
	hvJSON    = []string{"application/json"}
	hvZstd    = []string{"application/zstd"}
	hvBzip2   = []string{"application/x-bzip2"}
	hvMsgpack = []string{"application/octet-stream"}
)

// shardTTL: the shard index is short-lived (rattler-index: max-age=300);
// shards are immutable.
const (
	shardIndexTTL = 5 * time.Minute
	shardTTL      = 100 * 365 * 24 * time.Hour
)

func (cm *condaMirror) channeldata(w http.ResponseWriter, r *http.Request) error {
	if cm.m.URL == "" {
		return httpx.WriteJSON(w, http.StatusOK, map[string]any{"channeldata_version": 1, "packages": map[string]any{}, "subdirs": []string{}})
	}
	key := cm.env.MetaKey("channeldata.json")
	res, err := cm.env.Core.MetaOf(r.Context(), key, cm.m.TTL, func() *fetch.MetaSource {
		return &fetch.MetaSource{
			Key: key, URL: cm.m.URL + "/channeldata.json", Client: cm.client,
			TTL: cm.m.TTL, NotFoundTTL: cm.m.NotFoundTTL,
			Transform: func(b []byte, _ *http.Response) ([]byte, error) {
				if !bytes.HasPrefix(bytes.TrimSpace(b), []byte("{")) {
					return nil, errors.New("channeldata.json is not a JSON object")
				}
				return b, nil
			},
		}
	})
	if err != nil {
		return err
	}
	return cm.env.Core.ServeMeta(w, r, res, hvJSON)
}

// repodataForms are the forms of a subdir's index, and how each is read
// as a stream (nil: plain JSON).
var repodataForms = map[string]func([]byte) (io.Reader, error){
	"repodata.json":         nil,
	"current_repodata.json": nil,
	"repodata.json.zst": func(b []byte) (io.Reader, error) {
		return zstd.NewReader(bytes.NewReader(b), zstd.WithDecoderMaxMemory(maxDecoded), zstd.WithDecoderConcurrency(1))
	},
	"repodata.json.bz2": func(b []byte) (io.Reader, error) { return bzip2.NewReader(bytes.NewReader(b)), nil },
}

// repodataMeta returns a form of a subdir's repodata.
func (cm *condaMirror) repodataMeta(ctx context.Context, subdir, file string) (fetch.MetaResult, error) {
	return cm.env.Core.MetaOf(ctx, cm.env.MetaKey(subdir+"/"+file), cm.m.TTL, func() *fetch.MetaSource {
		return cm.repodataSource(subdir, file)
	})
}

func (cm *condaMirror) repodataURL(subdir, file string) string {
	return cm.m.URL + "/" + subdir + "/" + file
}

func (cm *condaMirror) repodataSource(subdir, file string) *fetch.MetaSource {
	return &fetch.MetaSource{
		Key: cm.env.MetaKey(subdir + "/" + file), URL: cm.repodataURL(subdir, file), Client: cm.client,
		TTL: cm.m.TTL, NotFoundTTL: cm.m.NotFoundTTL,
		Transform: func(b []byte, _ *http.Response) ([]byte, error) {
			// A compressed form is only opened as far as its info (it may
			// hold hundreds of MB of JSON); the plain one is parsed.
			if open := repodataForms[file]; open != nil {
				_, err := peekInfo(b, open)
				return b, err
			}
			_, err := ParseRepodata(b)
			return b, err
		},
	}
}

// peekInfo reads a compressed repodata's info.base_url, decompressing no
// further than its "info" key (conda-index writes it first).
func peekInfo(b []byte, open func([]byte) (io.Reader, error)) (string, error) {
	r, err := open(b)
	if err != nil {
		return "", err
	}
	if c, ok := r.(interface{ Close() }); ok {
		defer c.Close()
	}
	dec := json.NewDecoder(r)
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return "", fmt.Errorf("repodata is not a JSON object (%v)", err)
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return "", fmt.Errorf("repodata: %w", err)
		}
		if k != "info" {
			// info comes first in practice; a document without it at
			// the top has no base_url to rewrite.
			return "", nil
		}
		var info struct {
			BaseURL string `json:"base_url"`
		}
		if err := dec.Decode(&info); err != nil {
			return "", fmt.Errorf("repodata info: %w", err)
		}
		return info.BaseURL, nil
	}
	return "", nil
}

func (cm *condaMirror) parsedRepodata(res fetch.MetaResult, file string) (*Repodata, error) {
	v, err := fetch.Parsed(cm.env.Core, res.Entry, func(b []byte) (*Repodata, error) {
		if open := repodataForms[file]; open != nil {
			base, err := peekInfo(b, open)
			return &Repodata{BaseURL: base}, err // records are read from the plain form only
		}
		return ParseRepodata(b)
	})
	if err != nil {
		return nil, &httpx.UpstreamError{Status: http.StatusBadGateway, Msg: fmt.Sprintf("stored %s: %v", file, err)}
	}
	return v, nil
}

func isRepodata(file string) bool {
	_, ok := repodataForms[file]
	return ok
}

// subdirFile serves an index or a package of a subdir.
func (cm *condaMirror) subdirFile(w http.ResponseWriter, r *http.Request) error {
	subdir, file := r.PathValue("subdir"), r.PathValue("file")
	if !ValidSubdir(subdir) {
		return httpx.NewError(http.StatusNotFound, fmt.Sprintf("%s is not a platform subdirectory (noarch, linux-64, osx-arm64, ...)", httpx.QuoteName(subdir)))
	}
	switch {
	case isRepodata(file):
		return cm.repodata(w, r, subdir, file)
	case file == "repodata_shards.msgpack.zst":
		return cm.shardIndex(w, r, subdir)
	case ValidFilename(file):
		return cm.pkg(w, r, subdir, file)
	}
	return httpx.NewError(http.StatusNotFound, "not a file of a conda channel: expected repodata.json[.zst|.bz2], current_repodata.json, repodata_shards.msgpack.zst, shards/... or <name>-<version>-<build>.conda|.tar.bz2")
}

// repodata serves a form of a subdir's index. Byte for byte when nothing
// changes it; else (an absolute base_url, a policy, hosted packages) only
// repodata.json and current_repodata.json are rewritten, and the
// compressed forms are a 404, after which clients read repodata.json.
func (cm *condaMirror) repodata(w http.ResponseWriter, r *http.Request, subdir, file string) error {
	plain := file == "repodata.json" || file == "current_repodata.json"
	var hostedRecs *hostedRecords
	if cm.repo != nil {
		var err error
		if hostedRecs, err = cm.hostedRecords(r.Context(), subdir); err != nil {
			return err
		}
		if cm.m.URL == "" || (!plain && len(hostedRecs.files) > 0) {
			if !plain {
				return httpx.NewError(http.StatusNotFound, "a channel with hosted packages serves repodata.json only")
			}
			return cm.serveMerged(w, r, subdir, fetch.MetaResult{}, nil, hostedRecs)
		}
	}
	res, err := cm.repodataMeta(r.Context(), subdir, file)
	if err != nil && hostedRecs != nil && plain && !httpx.IsNotFound(err) {
		// Hosted packages do not depend on the upstream: with its
		// repodata unavailable (and none stored), the hosted records alone.
		cm.env.Log.Warn("upstream repodata unavailable; serving the hosted packages alone", "mirror", cm.m.Name, "subdir", subdir, "err", err)
		w.Header().Set("X-Mirror-Upstream", "unavailable")
		return cm.serveMerged(w, r, subdir, fetch.MetaResult{}, nil, hostedRecs)
	}
	if err != nil {
		return err
	}
	rd, err := cm.parsedRepodata(res, file)
	if err != nil {
		return err
	}
	changed := Absolute(rd.BaseURL) || cm.filters(r) || (hostedRecs != nil && len(hostedRecs.files) > 0)
	if !changed {
		ctype := hvJSON
		switch file {
		case "repodata.json.zst":
			ctype = hvZstd
		case "repodata.json.bz2":
			ctype = hvBzip2
		}
		return cm.env.Core.ServeMeta(w, r, res, ctype)
	}
	if !plain {
		return httpx.NewError(http.StatusNotFound, file+" is not served where the proxy rewrites the index (an absolute base_url, a policy, hosted packages): read repodata.json")
	}
	return cm.serveMerged(w, r, subdir, res, rd, hostedRecs)
}

// serveMerged serves repodata rd (nil: none) as the policies let clients
// see it, without an absolute base_url, with hosted packages added (the
// upstream's records of a hosted name are left out: a published name is
// owned).
func (cm *condaMirror) serveMerged(w http.ResponseWriter, r *http.Request, subdir string, res fetch.MetaResult, rd *Repodata, hr *hostedRecords) error {
	key := fetch.DerivedKey{Day: policy.SnapshotDay(r), Form: subdir}
	if rd != nil {
		key.ID = res.Entry.ID()
	}
	if hr != nil {
		key.ID2 = hr.version
	}
	d, err := cm.derived.Doc(key, time.Now(), func() (*fetch.Doc, policy.Window, error) {
		var win policy.Window
		now := time.Now()
		filters := cm.filters(r)
		keep := func(file string, rec Record) bool {
			if hr != nil && hr.names[rec.Name] {
				return false
			}
			if !filters {
				return true
			}
			why, v := cm.judge(r, rec, now)
			win.Add(v)
			return why == ""
		}
		if rd == nil {
			rd = &Repodata{Records: map[string]Record{}}
			rd.raw = map[string]json.RawMessage{"info": []byte(`{"subdir":"` + subdir + `"}`), "packages": []byte("{}"), "packages.conda": []byte("{}"), "repodata_version": []byte("1")}
		}
		body, err := rd.Render(keep, Absolute(rd.BaseURL))
		if err == nil && hr != nil && len(hr.files) > 0 {
			body, err = hr.mergeInto(body)
		}
		if err != nil {
			return nil, win, err
		}
		return fetch.NewDoc(body, "r"), win, nil
	})
	if err != nil {
		return &httpx.UpstreamError{Status: http.StatusBadGateway, Msg: fmt.Sprintf("repodata of %s: %v", subdir, err)}
	}
	return fetch.ServeDoc(w, r, d, hvJSON, cm.entryOf(res, hr))
}

// entryOf is the entry whose validators a merged document carries.
func (cm *condaMirror) entryOf(res fetch.MetaResult, hr *hostedRecords) fetch.MetaResult {
	if res.Entry != nil {
		return res
	}
	return fetch.HostedEntry(hr.modified)
}

func (cm *condaMirror) shardIndexURL(subdir string) string {
	return cm.m.URL + "/" + subdir + "/repodata_shards.msgpack.zst"
}

func (cm *condaMirror) shardIndexMeta(ctx context.Context, subdir string) (fetch.MetaResult, error) {
	key, ttl := cm.env.MetaKey(subdir+"/repodata_shards.msgpack.zst"), min(cm.m.TTL, shardIndexTTL)
	return cm.env.Core.MetaOf(ctx, key, ttl, func() *fetch.MetaSource {
		return &fetch.MetaSource{
			Key: key, URL: cm.shardIndexURL(subdir),
			Client: cm.client, TTL: ttl, NotFoundTTL: cm.m.NotFoundTTL,
			Transform: func(b []byte, _ *http.Response) ([]byte, error) {
				_, err := ParseShardIndex(b)
				return b, err
			},
		}
	})
}

// shards is a parsed shard index with the upstream URLs it leads to.
type shards struct {
	idx                *ShardIndex
	pkgBase, shardBase string // upstream URLs (directories)
	rewritten          *fetch.Doc
	canonical          bool // its bases are "./" and "./shards/" already
}

func (cm *condaMirror) loadShards(ctx context.Context, subdir string) (fetch.MetaResult, *shards, error) {
	indexURL := cm.shardIndexURL(subdir)
	res, err := cm.shardIndexMeta(ctx, subdir)
	if err != nil {
		return res, nil, err
	}
	v, err := fetch.Parsed(cm.env.Core, res.Entry, func(b []byte) (*shards, error) {
		idx, err := ParseShardIndex(b)
		if err != nil {
			return nil, err
		}
		s := &shards{idx: idx}
		pkg, shard := idx.Info.BaseURL, idx.Info.ShardsBaseURL
		if pkg == "" {
			pkg = "./"
		}
		if shard == "" {
			shard = "./shards/"
		}
		if s.pkgBase, err = Resolve(indexURL, pkg); err != nil {
			return nil, err
		}
		if s.shardBase, err = Resolve(indexURL, shard); err != nil {
			return nil, err
		}
		dir := cm.m.URL + "/" + subdir + "/"
		s.canonical = s.pkgBase == dir && s.shardBase == dir+"shards/"
		if !s.canonical {
			// Clients must come back to the proxy, whose layout is fixed.
			c := *idx
			c.Info.BaseURL, c.Info.ShardsBaseURL = "./", "./shards/"
			out, err := c.Marshal()
			if err != nil {
				return nil, err
			}
			s.rewritten = fetch.NewDoc(out, "s")
		}
		return s, nil
	})
	if err != nil {
		return res, nil, &httpx.UpstreamError{Status: http.StatusBadGateway, Msg: fmt.Sprintf("stored shard index of %s: %v", subdir, err)}
	}
	return res, v, nil
}

// shardIndex serves repodata_shards.msgpack.zst, with its base URLs made
// relative when they were not.
func (cm *condaMirror) shardIndex(w http.ResponseWriter, r *http.Request, subdir string) error {
	if cm.filters(r) || cm.repo != nil {
		return httpx.NewError(http.StatusNotFound, "sharded repodata is not served where a policy filters the channel or it hosts packages: read repodata.json")
	}
	res, s, err := cm.loadShards(r.Context(), subdir)
	if err != nil {
		return err
	}
	if s.rewritten != nil {
		return fetch.ServeDoc(w, r, s.rewritten, hvMsgpack, res)
	}
	return cm.env.Core.ServeMeta(w, r, res, hvMsgpack)
}

// shardResult loads a shard, verified against the sha256 its name gives.
func (cm *condaMirror) loadShard(ctx context.Context, subdir, sum string, s *shards) (fetch.MetaResult, *Shard, error) {
	key := cm.env.MetaKey(subdir + "/shards/" + sum + ".msgpack.zst")
	res, err := cm.env.Core.MetaOf(ctx, key, shardTTL, func() *fetch.MetaSource {
		return &fetch.MetaSource{
			Key: key, URL: s.shardBase + sum + ".msgpack.zst",
			Client: cm.client, TTL: shardTTL, NotFoundTTL: cm.m.NotFoundTTL,
			Transform: func(b []byte, _ *http.Response) ([]byte, error) {
				got := sha256.Sum256(b)
				if hex.EncodeToString(got[:]) != sum {
					return nil, fmt.Errorf("shard %s has sha256 %x", sum, got)
				}
				_, err := ParseShard(b)
				return b, err
			},
		}
	})
	if err != nil {
		return res, nil, err
	}
	v, err := fetch.Parsed(cm.env.Core, res.Entry, func(b []byte) (*Shard, error) { return ParseShard(b) })
	if err != nil {
		return res, nil, &httpx.UpstreamError{Status: http.StatusBadGateway, Msg: fmt.Sprintf("stored shard %s: %v", sum, err)}
	}
	return res, v, nil
}

// shard serves shards/<sha256>.msgpack.zst: only shards the shard index
// names are fetched.
func (cm *condaMirror) shard(w http.ResponseWriter, r *http.Request) error {
	subdir, file := r.PathValue("subdir"), r.PathValue("file")
	sum := ShardSum(file)
	if !ValidSubdir(subdir) || sum == "" {
		return httpx.NewError(http.StatusNotFound, "not a shard of this channel: expected <subdir>/shards/<sha256>.msgpack.zst")
	}
	if cm.m.URL == "" {
		return httpx.NewError(http.StatusNotFound, "a hosted channel has no shards: read repodata.json")
	}
	if res, ok := cm.env.Core.FreshInMemory(cm.env.MetaKey(subdir+"/shards/"+file), shardTTL); ok {
		return cm.env.Core.ServeMeta(w, r, res, hvMsgpack)
	}
	_, s, err := cm.loadShards(r.Context(), subdir)
	if err != nil {
		return err
	}
	listed := false
	for _, v := range s.idx.Shards {
		if hex.EncodeToString(v) == sum {
			listed = true
			break
		}
	}
	if !listed {
		return httpx.NewError(http.StatusNotFound, "the shard index of "+subdir+" names no shard "+sum)
	}
	res, _, err := cm.loadShard(r.Context(), subdir, sum, s)
	if err != nil {
		return err
	}
	return cm.env.Core.ServeMeta(w, r, res, hvMsgpack)
}

// lookup finds a package's record and upstream URL: in its shard when the
// channel is sharded (a few KB, instead of a repodata.json that may weigh
// hundreds of MB), else in repodata.json.
func (cm *condaMirror) lookup(ctx context.Context, subdir, file string) (Record, string, error) {
	_, s, err := cm.loadShards(ctx, subdir)
	switch {
	case err == nil:
		sum, ok := s.idx.Shards[PackageName(file)]
		if !ok {
			return Record{}, "", httpx.NewError(http.StatusNotFound, fmt.Sprintf("%s is not in the mirrored shard index of %s", file, subdir))
		}
		_, shard, err := cm.loadShard(ctx, subdir, hex.EncodeToString(sum), s)
		if err != nil {
			return Record{}, "", err
		}
		rec, ok := shard.Find(file)
		if !ok {
			return Record{}, "", httpx.NewError(http.StatusNotFound, fmt.Sprintf("%s is not in the mirrored shard of %s", file, PackageName(file)))
		}
		return rec.Record(), s.pkgBase + file, nil
	case !errors.Is(err, httpx.ErrNotFound):
		return Record{}, "", err
	}
	res, err := cm.repodataMeta(ctx, subdir, "repodata.json")
	if err != nil {
		return Record{}, "", err
	}
	rd, err := cm.parsedRepodata(res, "repodata.json")
	if err != nil {
		return Record{}, "", err
	}
	rec, ok := rd.Records[file]
	if !ok {
		return Record{}, "", httpx.NewError(http.StatusNotFound, fmt.Sprintf("%s is not in the mirrored repodata of %s", file, subdir))
	}
	base := rd.BaseURL
	if base == "" {
		base = "./"
	}
	dir, err := Resolve(cm.repodataURL(subdir, "repodata.json"), base)
	if err != nil {
		return Record{}, "", &httpx.UpstreamError{Status: http.StatusBadGateway, Msg: fmt.Sprintf("repodata of %s: base_url: %v", subdir, err)}
	}
	return rec, dir + file, nil
}

// pkg serves a package: stored, published, or downloaded from the URL its
// record gives and verified against the record's sha256 (and size)
// before it is stored.
func (cm *condaMirror) pkg(w http.ResponseWriter, r *http.Request, subdir, file string) error {
	name := PackageName(file)
	if cm.repo != nil {
		owned, err := cm.repo.Owns(r.Context(), name)
		if err != nil {
			return err
		}
		if owned || cm.m.URL == "" {
			path, err := cm.hostedPath(r.Context(), name, subdir, file)
			if err != nil {
				return err
			}
			return cm.env.Core.ServeHostedFile(w, r, cm.repo, path)
		}
	}
	if why := cm.m.Rules.Refuse(name); why != "" {
		return httpx.NewError(http.StatusNotFound, why)
	}
	if cm.filters(r) {
		// Fail closed: a file the index no longer lists (the upstream took
		// it down) is judged by what its name gives, with no timestamp
		// (cooldownUnknown decides); every file is refused while the index
		// cannot be read, even one in storage.
		rec, _, err := cm.lookup(r.Context(), subdir, file)
		if httpx.IsNotFound(err) {
			m := filenameRe.FindStringSubmatch(file)
			rec, err = Record{Name: m[1], Version: m[2], Build: m[3]}, nil
		}
		if err != nil {
			return err
		}
		why, v := cm.judge(r, rec, time.Now())
		if err := cm.env.FileVerdict(w, r, why, v); err != nil {
			return err
		}
	}
	key := storage.Join(cm.env.DistPrefix, cm.m.Name, subdir, file)
	return cm.env.Core.ServeFile(w, r, key, func(ctx context.Context) (fetch.FileSource, error) {
		rec, u, err := cm.lookup(ctx, subdir, file)
		if err != nil {
			return fetch.FileSource{}, err
		}
		sum, err := fetch.HexDigest("sha256", rec.SHA256)
		if err != nil {
			return fetch.FileSource{}, &httpx.UpstreamError{Status: http.StatusBadGateway, Msg: fmt.Sprintf("the record of %s has no usable sha256: %v", file, err)}
		}
		return fetch.FileSource{URL: u, Client: cm.client, Digests: []fetch.Digest{sum}, Size: rec.Size}, nil
	})
}

// Policies: records published (their timestamp) less than the mirror's
// cooldown ago or after a snapshot's date, denied versions and names
// outside the allow list are left out of repodata.json; the compressed
// forms and the shard index are then a 404 (clients read repodata.json);
// files of hidden records answer 403 with the reason.

func (cm *condaMirror) filters(r *http.Request) bool {
	_, snap := policy.Snapshot(r)
	return snap || cm.m.Cooldown.Age > 0 || len(cm.m.Rules.Allow) > 0 || len(cm.m.Rules.Deny) > 0
}

// published reads a record's timestamp (milliseconds; old records have
// seconds).
func published(ts int64) time.Time {
	switch {
	case ts <= 0:
		return time.Time{}
	case ts > 1e11:
		return time.UnixMilli(ts).UTC()
	}
	return time.Unix(ts, 0).UTC()
}

// judge says why a record is not served ("" : it is): a package refused
// whole leaves the repodata too; then the policies (see policy.Judge).
func (cm *condaMirror) judge(r *http.Request, rec Record, now time.Time) (string, policy.Verdict) {
	if why := cm.m.Rules.Refuse(rec.Name); why != "" {
		return why, policy.Verdict{Hidden: true, Denied: true}
	}
	return policy.Judge(r, cm.m.Cooldown, cm.m.Rules, policy.Judged{Name: rec.Name, What: rec.Name + " " + rec.Version + " (" + rec.Build + ")",
		Published: published(rec.Timestamp), Versions: []string{rec.Version}}, now)
}
