package cran

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/mirror-proxy/mirror-proxy/fetch"
	"github.com/mirror-proxy/mirror-proxy/httpx"
	"github.com/mirror-proxy/mirror-proxy/mirror"
	"github.com/mirror-proxy/mirror-proxy/policy"
	"github.com/mirror-proxy/mirror-proxy/storage"
)

func init() {
	mirror.Register(mirror.Type{
		Client:     func(u string) string { return "options(repos = c(CRAN = \"" + u + "\"))   # in ~/.Rprofile" },
		Name:       "cran",
		DefaultURL: "https://cloud.r-project.org",
		// CRAN rebuilds its indexes a few times a day.
		DefaultTTL: 30 * time.Minute,
		// Advisories: OSV's "CRAN" ecosystem, versions in R's order.
		OSVEcosystem: "CRAN", OSVCompare: CompareVersions,
		New: newMirror,
	})
}

// cranMirror serves one R repository under /N/:
//
//	/N/src/contrib/PACKAGES[.gz|.rds]                 indexes (mutable)
//	/N/src/contrib/<pkg>_<ver>.tar.gz                 source packages (MD5sum-verified)
//	/N/src/contrib/Archive/<pkg>/<pkg>_<ver>.tar.gz   older versions
//	/N/bin/<os>[/<arch>]/contrib/<r>/...              binary trees (indexes and packages)
//	/N/__linux__/<distro>/<snapshot>/src/contrib/...  Posit Package Manager's Linux binaries,
//	                                                  kept apart per R version and platform
type cranMirror struct {
	env     *mirror.Env
	m       fetch.Mirror
	client  *http.Client
	derived fetch.Derived // indexes filtered by the policies
}

var _ mirror.Ecosystem = (*cranMirror)(nil)

func newMirror(env *mirror.Env) mirror.Ecosystem {
	return &cranMirror{env: env, m: env.Mirror, client: env.Client}
}

// Routes registers the mirror's routes.
func (cm *cranMirror) Routes(rt mirror.Router) {
	rt.Read("/src/contrib/{file}", cm.serve)
	rt.Read("/src/contrib/Archive/{pkg}/{file}", cm.serve)
	rt.Read("/bin/{os}/contrib/{rver}/{file}", cm.serve)
	rt.Read("/bin/{os}/{arch}/contrib/{rver}/{file}", cm.serve)
	rt.Read("/__linux__/{distro}/{snap}/src/contrib/{file}", cm.serve)
	rt.Read("/__linux__/{distro}/{snap}/src/contrib/Archive/{pkg}/{file}", cm.serve)
}

var segmentRe = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$`)

// where is what a request names: the repository directory ("src/contrib",
// "bin/windows/contrib/4.4", "__linux__/jammy/latest/src/contrib"), the
// file, the package of an Archive URL, and for Posit's Linux binaries the
// R agent that selects them.
type where struct {
	dir, file, archivePkg string
	agent, segment        string // segment: the agent's part of storage keys ("" : none)
}

func (cm *cranMirror) where(r *http.Request) (where, error) {
	w := where{file: r.PathValue("file"), archivePkg: r.PathValue("pkg")}
	for _, n := range []string{"os", "arch", "rver", "distro", "snap"} {
		if v := r.PathValue(n); v != "" && !segmentRe.MatchString(v) {
			return w, fmt.Errorf("%s is not a repository path segment", httpx.QuoteName(v))
		}
	}
	switch {
	case r.PathValue("distro") != "":
		w.dir = "__linux__/" + r.PathValue("distro") + "/" + r.PathValue("snap") + "/src/contrib"
		w.agent, w.segment = RAgent(r.Header.Get("User-Agent"))
	case r.PathValue("arch") != "":
		w.dir = "bin/" + r.PathValue("os") + "/" + r.PathValue("arch") + "/contrib/" + r.PathValue("rver")
	case r.PathValue("os") != "":
		w.dir = "bin/" + r.PathValue("os") + "/contrib/" + r.PathValue("rver")
	default:
		w.dir = "src/contrib"
	}
	return w, nil
}

// source reports whether dir holds source packages (which have an
// Archive).
func (w where) source() bool { return strings.HasSuffix(w.dir, "src/contrib") }

// key is the storage path of file in w's directory.
func (w where) key(file string) string {
	if w.segment != "" {
		return w.dir + "/" + w.segment + "/" + file
	}
	return w.dir + "/" + file
}

var (
	hvText   = []string{"text/plain; charset=utf-8"}
	hvGzip   = []string{"application/x-gzip"}
	hvBinary = []string{"application/octet-stream"}
)

func (cm *cranMirror) serve(w http.ResponseWriter, r *http.Request) error {
	at, err := cm.where(r)
	if err != nil {
		return httpx.NewError(http.StatusNotFound, err.Error())
	}
	if IsIndex(at.file) && at.archivePkg == "" {
		return cm.index(w, r, at)
	}
	return cm.pkgFile(w, r, at)
}

func (cm *cranMirror) indexKey(at where, file string) string { return cm.env.MetaKey(at.key(file)) }

// indexMeta returns an index document of a directory.
func (cm *cranMirror) indexMeta(ctx context.Context, at where, file string) (fetch.MetaResult, error) {
	return cm.env.Core.MetaOf(ctx, cm.indexKey(at, file), cm.m.TTL, func() *fetch.MetaSource { return cm.indexSource(at, file) })
}

func (cm *cranMirror) indexSource(at where, file string) *fetch.MetaSource {
	return &fetch.MetaSource{
		Key: cm.indexKey(at, file), URL: cm.m.URL + "/" + at.dir + "/" + file,
		Client: cm.client, TTL: cm.m.TTL, NotFoundTTL: cm.m.NotFoundTTL, Agent: at.agent,
		Transform: func(b []byte, _ *http.Response) ([]byte, error) {
			if file == "PACKAGES.rds" {
				if len(b) > 0 && b[0] == '<' {
					return nil, errors.New("PACKAGES.rds is HTML, not an R data file")
				}
				return b, nil
			}
			_, err := ParseIndex(b)
			return b, err
		},
	}
}

// index serves PACKAGES, PACKAGES.gz or PACKAGES.rds of a directory.
func (cm *cranMirror) index(w http.ResponseWriter, r *http.Request, at where) error {
	filtered := cm.filters(r)
	if filtered && at.file == "PACKAGES.rds" {
		// R's own serialization is not rewritten here; R reads
		// PACKAGES.gz after a 404 for PACKAGES.rds.
		return httpx.NewError(http.StatusNotFound, "PACKAGES.rds is not served where a policy filters the index: read PACKAGES.gz")
	}
	res, err := cm.indexMeta(r.Context(), at, at.file)
	if err != nil {
		return err
	}
	ctype := hvText
	switch at.file {
	case "PACKAGES.gz":
		ctype = hvGzip
	case "PACKAGES.rds":
		ctype = hvBinary
	}
	if filtered {
		d, err := cm.filtered(r, res, at.file == "PACKAGES.gz")
		if err != nil {
			return err
		}
		return fetch.ServeDoc(w, r, d, ctype, res)
	}
	return cm.env.Core.ServeMeta(w, r, res, ctype)
}

// parsedIndex loads a directory's index for finding packages: PACKAGES.gz,
// or PACKAGES where there is no .gz.
func (cm *cranMirror) parsedIndex(ctx context.Context, at where) (*Index, error) {
	var res fetch.MetaResult
	var err error
	for _, file := range []string{"PACKAGES.gz", "PACKAGES"} {
		if res, err = cm.indexMeta(ctx, at, file); !errors.Is(err, httpx.ErrNotFound) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	v, err := fetch.Parsed(cm.env.Core, res.Entry, func(b []byte) (*Index, error) { return ParseIndex(b) })
	if err != nil {
		return nil, &httpx.UpstreamError{Status: http.StatusBadGateway, Msg: fmt.Sprintf("stored index of %s: %v", at.dir, err)}
	}
	return v, nil
}

// pkgFile serves a package file. The storage key is the file's name in
// its directory (an Archive URL shares the key of the current one), so a
// stored file is served without the index, and a version CRAN has since
// archived is still served at its old URL. A missing file is looked up in
// the index: a listed one is downloaded from the directory and verified
// against its MD5sum (a source package found archived meanwhile is
// fetched from Archive/<pkg>/ against the same sum); a source package the
// index no longer lists is fetched from Archive/<pkg>/ and checked as an
// archive.
func (cm *cranMirror) pkgFile(w http.ResponseWriter, r *http.Request, at where) error {
	pkg, version, typ, ok := ParseFile(at.file)
	if !ok || (at.archivePkg != "" && (at.archivePkg != pkg || !at.source())) {
		return httpx.NewError(http.StatusNotFound, "not a package file of this mirror: expected <pkg>_<version>.tar.gz (.tgz, .zip), or Archive/<pkg>/<pkg>_<version>.tar.gz")
	}
	if why := cm.m.Rules.Refuse(pkg); why != "" {
		return httpx.NewError(http.StatusNotFound, why)
	}
	if cm.filters(r) {
		if err := cm.heldBack(w, r, at, pkg, version); err != nil {
			return err
		}
	}
	key := storage.Join(cm.env.DistPrefix, cm.m.Name, at.key(at.file))
	return cm.env.Core.ServeFile(w, r, key, func(ctx context.Context) (fetch.FileSource, error) {
		idx, err := cm.parsedIndex(ctx, at)
		if err != nil {
			return fetch.FileSource{}, err
		}
		check := typ
		if typ == "tgz" {
			check = "tar.gz"
		}
		src := fetch.FileSource{URL: cm.m.URL + "/" + at.dir + "/" + at.file, Client: cm.client, Agent: at.agent}
		archived := cm.m.URL + "/" + at.dir + "/Archive/" + pkg + "/" + at.file
		e, listed := idx.Find(pkg, version)
		if listed && at.source() {
			// The index may be older than CRAN's move of this version to
			// Archive/ (the next one was just published).
			src.Moved = archived
		}
		switch {
		case listed && at.agent == "" && e.MD5sum != "":
			sum, err := fetch.HexDigest("md5", e.MD5sum)
			if err != nil {
				return fetch.FileSource{}, &httpx.UpstreamError{Status: http.StatusBadGateway, Msg: fmt.Sprintf("the index's MD5sum of %s: %v", at.file, err)}
			}
			src.Digests = []fetch.Digest{sum}
		case listed:
			// Posit's Linux binaries: the index's MD5sum is the source's.
			src.Check = fetch.ArchiveCheck(check)
		case at.source():
			src.URL = archived
			src.Check = fetch.ArchiveCheck(check)
		default:
			return fetch.FileSource{}, httpx.NewError(http.StatusNotFound, fmt.Sprintf("%s is not in the mirrored index of %s", at.file, at.dir))
		}
		return src, nil
	})
}

// Policies: versions published (Date/Publication) less than the
// mirror's cooldown ago or after a snapshot's date, denied versions and
// packages outside the allow list are left out of PACKAGES and
// PACKAGES.gz; PACKAGES.rds is then a 404 (R reads PACKAGES.gz next).
// Their files answer 403 (404 for a package refused whole) with the
// reason. An index without Date/Publication gives no publish times:
// cooldownUnknown decides.

// filters reports whether indexes are filtered for r.
func (cm *cranMirror) filters(r *http.Request) bool {
	_, snap := policy.Snapshot(r)
	return snap || cm.m.Cooldown.Age > 0 || len(cm.m.Rules.Allow) > 0 || len(cm.m.Rules.Deny) > 0 || cm.m.Rules.Advisor != nil
}

// judge says why a version is not served ("" : it is): a package refused
// whole leaves the index too; then the policies (see policy.Judge).
func (cm *cranMirror) judge(r *http.Request, pkg, version string, published, now time.Time) (string, policy.Verdict) {
	if why := cm.m.Rules.Refuse(pkg); why != "" {
		return why, policy.Verdict{Hidden: true, Denied: true}
	}
	return policy.Judge(r, cm.m.Cooldown, cm.m.Rules, policy.Judged{Name: pkg, What: pkg + " " + version,
		Published: published, Versions: []string{version}}, now)
}

// filtered is an index as the policies let clients see it, once per
// stored version (and snapshot day).
func (cm *cranMirror) filtered(r *http.Request, res fetch.MetaResult, gz bool) (*fetch.Doc, error) {
	key := fetch.DerivedKey{ID: res.Entry.ID(), Day: policy.SnapshotDay(r)}
	d, err := cm.derived.Doc(key, time.Now(), func() (*fetch.Doc, policy.Window, error) {
		var w policy.Window
		v, err := fetch.Parsed(cm.env.Core, res.Entry, func(b []byte) (*Index, error) { return ParseIndex(b) })
		if err != nil {
			return nil, w, err
		}
		now := time.Now()
		var kept []Entry
		for _, e := range v.Entries {
			why, verdict := cm.judge(r, e.Package, e.Version, e.Published, now)
			w.Add(verdict)
			if why == "" {
				kept = append(kept, e)
			}
		}
		body := Render(kept)
		if gz {
			return fetch.NewDoc(Gzip(body), "g"), w, nil
		}
		return fetch.NewDoc(body, "p"), w, nil
	})
	if err != nil {
		return nil, &httpx.UpstreamError{Status: http.StatusBadGateway, Msg: fmt.Sprintf("stored index: %v", err)}
	}
	return d, nil
}

// heldBack refuses the file of a version a policy hides.
func (cm *cranMirror) heldBack(w http.ResponseWriter, r *http.Request, at where, pkg, version string) error {
	idx, err := cm.parsedIndex(r.Context(), at)
	if err != nil {
		return err // fail closed: a file is not served while it cannot be judged
	}
	var published time.Time
	if e, ok := idx.Find(pkg, version); ok {
		published = e.Published
	}
	why, v := cm.judge(r, pkg, version, published, time.Now())
	return cm.env.FileVerdict(w, r, why, v)
}
