package maven

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mirror-proxy/mirror-proxy/fetch"
	"github.com/mirror-proxy/mirror-proxy/httpx"
	"github.com/mirror-proxy/mirror-proxy/mirror"
	"github.com/mirror-proxy/mirror-proxy/storage"
)

func init() {
	mirror.Register(mirror.Type{
		Client: func(u string) string {
			return "<!-- ~/.m2/settings.xml -->\n<mirrors><mirror><id>proxy</id><mirrorOf>*</mirrorOf><url>" + u + "</url></mirror></mirrors>"
		},
		Name:       "maven",
		DefaultURL: "https://repo.maven.apache.org/maven2",
		// Releases never change; maven-metadata.xml changes with each one.
		DefaultTTL: 30 * time.Minute,
		ParseDeny:  ParseDeny, // group:artifact[:version]
		Hosts:      true,
		New:        newMirror,
	})
}

// mavenMirror serves one Maven repository under /N/.
type mavenMirror struct {
	env     *mirror.Env
	m       fetch.Mirror
	derived fetch.Derived // metadata filtered by the policies
	// sums are checksums computed of served files, by storage key.
	sumsMu sync.Mutex
	sums   map[string]map[string]string
}

var _ mirror.Ecosystem = (*mavenMirror)(nil)

func newMirror(env *mirror.Env) mirror.Ecosystem {
	return &mavenMirror{env: env, m: env.Mirror, sums: map[string]map[string]string{}}
}

// Routes registers the mirror's routes: every path is a repository path.
func (mm *mavenMirror) Routes(rt mirror.Router) {
	rt.Read("/{rest...}", mm.serve)
	rt.Write(http.MethodPut, "/{rest...}", mm.deploy)
}

var hvXML = []string{"text/xml"}

func (mm *mavenMirror) serve(w http.ResponseWriter, r *http.Request) error {
	p, err := ParsePath(r.PathValue("rest"))
	if err != nil {
		return httpx.NewError(http.StatusNotFound, err.Error())
	}
	if c, owned, err := mm.owner(r.Context(), p.Path); err != nil {
		return err
	} else if owned {
		return mm.serveHosted(w, r, p, c)
	} else if mm.m.URL == "" {
		return httpx.NewError(http.StatusNotFound, p.Path+" is not deployed here")
	}
	cs := candidates(p.Path)
	switch p.Kind {
	case "metadata":
		res, err := mm.metadata(r.Context(), p.Path)
		if err != nil {
			return err
		}
		if c := cs[0]; mm.filters(r, c.name()) {
			f, err := mm.filteredMetadata(r, c, res)
			if err != nil {
				return err
			}
			return fetch.ServeDoc(w, r, f.doc, hvXML, res)
		}
		return mm.env.Core.ServeMeta(w, r, res, hvXML)
	case "checksum":
		return mm.checksum(w, r, p)
	}
	if len(cs) > 1 && mm.filters(r, cs[1].name()) {
		if err := mm.heldBack(w, r, cs[1]); err != nil {
			return err
		}
	}
	return mm.env.Core.ServeFile(w, r, mm.fileKey(p.Path), mm.resolve(p.Path))
}

func (mm *mavenMirror) fileKey(path string) string {
	return storage.Join(mm.env.DistPrefix, mm.m.Name, path)
}

// metadata is a maven-metadata.xml: revalidated after the TTL, served
// stale when the upstream fails.
func (mm *mavenMirror) metadata(ctx context.Context, path string) (fetch.MetaResult, error) {
	key := mm.env.MetaKey(path)
	return mm.env.Core.MetaOf(ctx, key, mm.m.TTL, func() *fetch.MetaSource {
		return &fetch.MetaSource{Key: key, URL: mm.m.URL + "/" + path, Client: mm.env.Client, TTL: mm.m.TTL,
			NotFoundTTL: mm.m.NotFoundTTL, Transform: func(b []byte, _ *http.Response) ([]byte, error) {
				_, err := ParseMetadata(b)
				return b, err
			}}
	})
}

// resolve finds a file upstream: verified against the upstream's .sha1
// (checked whole as an archive or XML when the upstream has none).
func (mm *mavenMirror) resolve(path string) func(ctx context.Context) (fetch.FileSource, error) {
	return func(ctx context.Context) (fetch.FileSource, error) {
		src := fetch.FileSource{URL: mm.m.URL + "/" + path, Client: mm.env.Client}
		sum, err := mm.upstreamSHA1(ctx, path)
		if err != nil {
			return src, err
		}
		switch {
		case sum != "":
			d, err := fetch.HexDigest("sha1", sum)
			if err != nil {
				return src, &httpx.UpstreamError{Status: http.StatusBadGateway, Msg: fmt.Sprintf("the upstream's %s.sha1: %v", path, err)}
			}
			src.Digests = []fetch.Digest{d}
		case strings.HasSuffix(path, ".jar") || strings.HasSuffix(path, ".war") || strings.HasSuffix(path, ".zip"):
			src.Check = fetch.ArchiveCheck("zip")
		case strings.HasSuffix(path, ".pom") || strings.HasSuffix(path, ".xml"):
			src.Check = xmlCheck
		}
		return src, nil
	}
}

// upstreamSHA1 is the upstream's .sha1 of path ("" when it has none).
func (mm *mavenMirror) upstreamSHA1(ctx context.Context, path string) (string, error) {
	u := mm.m.URL + "/" + path + ".sha1"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := mm.env.Client.Do(req)
	if err != nil {
		return "", fetch.TransportError(u, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return "", nil
	case resp.StatusCode != http.StatusOK:
		return "", fetch.StatusError(u, resp)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if err != nil {
		return "", fetch.TransportError(u, err)
	}
	// "<hex>" or "<hex>  <file name>" (older uploads).
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "", &httpx.UpstreamError{Status: http.StatusBadGateway, Msg: u + " is empty"}
	}
	return f[0], nil
}

// xmlCheck checks that a file is well-formed XML.
func xmlCheck(r io.ReaderAt, n int64) error {
	d := xml.NewDecoder(io.NewSectionReader(r, 0, n))
	for {
		_, err := d.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("not well-formed XML: %v", err)
		}
	}
}

func newHash(alg string) hash.Hash {
	switch alg {
	case "md5":
		return md5.New()
	case "sha1":
		return sha1.New()
	case "sha256":
		return sha256.New()
	}
	return sha512.New()
}

// checksum answers a .sha1, .md5, .sha256 or .sha512 from the bytes the
// proxy serves: of the stored maven-metadata.xml, or of the file (stored
// first if it is not yet).
func (mm *mavenMirror) checksum(w http.ResponseWriter, r *http.Request, p Path) error {
	var sum string
	if strings.HasSuffix(p.Of, "/maven-metadata.xml") || p.Of == "maven-metadata.xml" {
		res, err := mm.metadata(r.Context(), p.Of)
		if err != nil {
			return err
		}
		var b []byte
		if c := candidates(p.Of)[0]; mm.filters(r, c.name()) {
			f, err := mm.filteredMetadata(r, c, res)
			if err != nil {
				return err
			}
			b = f.body // the checksum of what is served
		} else if b, err = mm.env.Core.PlainBody(res.Entry); err != nil {
			return err
		}
		h := newHash(p.Alg)
		h.Write(b)
		sum = hex.EncodeToString(h.Sum(nil))
	} else {
		op, err := ParsePath(p.Of)
		if err != nil || op.Kind != "file" {
			return httpx.NewError(http.StatusNotFound, "not a checksum of a repository file")
		}
		if cs := candidates(op.Path); len(cs) > 1 && mm.filters(r, cs[1].name()) {
			if err := mm.heldBack(w, r, cs[1]); err != nil {
				return err
			}
		}
		if sum, err = mm.fileSum(r, op.Path, p.Alg); err != nil {
			return err
		}
	}
	return httpx.WriteBlob(w, http.StatusOK, "text/plain", []byte(sum))
}

// fileSum is the checksum of the file at path as the proxy serves it:
// the file is served (from where it is kept, or fetched and verified) into
// the hashes, once; the sums are kept in memory.
func (mm *mavenMirror) fileSum(r *http.Request, path, alg string) (string, error) {
	key := mm.fileKey(path)
	mm.sumsMu.Lock()
	s, ok := mm.sums[key]
	mm.sumsMu.Unlock()
	if ok {
		return s[alg], nil
	}
	hw := &hashWriter{header: http.Header{}, hashes: map[string]hash.Hash{}}
	for a := range ChecksumAlgs {
		hw.hashes[a] = newHash(a)
	}
	req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, r.URL.String(), nil)
	if err := mm.env.Core.ServeFile(hw, req, key, mm.resolve(path)); err != nil {
		return "", err
	}
	if hw.code != 0 && hw.code != http.StatusOK {
		return "", &httpx.UpstreamError{Status: http.StatusBadGateway, Msg: fmt.Sprintf("%s: %d", path, hw.code)}
	}
	s = map[string]string{}
	for a, h := range hw.hashes {
		s[a] = hex.EncodeToString(h.Sum(nil))
	}
	mm.sumsMu.Lock()
	if len(mm.sums) > 10000 {
		mm.sums = map[string]map[string]string{} // bounded: computed again when asked
	}
	mm.sums[key] = s
	mm.sumsMu.Unlock()
	return s[alg], nil
}

// hashWriter is a response writer that hashes the body and keeps nothing.
type hashWriter struct {
	header http.Header
	code   int
	hashes map[string]hash.Hash
}

func (h *hashWriter) Header() http.Header { return h.header }
func (h *hashWriter) WriteHeader(code int) {
	if h.code == 0 {
		h.code = code
	}
}
func (h *hashWriter) Write(b []byte) (int, error) {
	if h.code == 0 {
		h.code = http.StatusOK
	}
	for _, x := range h.hashes {
		x.Write(b)
	}
	return len(b), nil
}
