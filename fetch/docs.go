package fetch

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mirror-proxy/mirror-proxy/httpx"
)

// Doc is a page rendered from a stored document, in both encodings (its
// weight is counted in the entry's, as part of the parsed index).
type Doc struct {
	gzBody
	etag  string
	etagH []string
	size  int64 // of the plain bytes
}

// NewDoc renders body as a page, gzipped once; its ETag is tag followed
// by a digest of body.
func NewDoc(body []byte, tag string) *Doc {
	buf := gzipBytes(body, gzip.BestSpeed, gzip.Header{})
	sum := sha256.Sum256(body)
	etag := `"` + tag + hex.EncodeToString(sum[:12]) + `"`
	d := &Doc{gzBody: gzBody{gz: buf, gzLen: []string{strconv.Itoa(len(buf))}, rawLen: []string{strconv.Itoa(len(body))}},
		etag: etag, etagH: []string{etag}, size: int64(len(body))}
	return d
}

// Weight is the memory a Doc may hold: its gzip bytes and the plain ones
// a client without gzip makes.
func (d *Doc) Weight() int64 { return int64(len(d.gz)) + d.size }

var hvVaryAccept = []string{"Accept, Accept-Encoding"}

// ServeDoc sends a rendered page: gzip bytes as they are when accepted,
// with an ETag per format (If-None-Match → 304) and Last-Modified from the
// stored page.
func ServeDoc(w http.ResponseWriter, r *http.Request, d *Doc, ctype []string, res MetaResult) error {
	return serve(w, r, res, ctype, hvVaryAccept, &d.gzBody, d.etag, d.etagH, nil)
}

func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}

// writeGzipDoc sends the gzip bytes as they are when the client accepts
// gzip, else the plain bytes (made once and kept), always from memory and
// with a Content-Length. made, when set, is told when the plain bytes are
// first made, so that the owner can count them.
func writeGzipDoc(w http.ResponseWriter, r *http.Request, b *gzBody, made func()) error {
	h := w.Header()
	if httpx.AcceptsGzip(r) {
		h["Content-Encoding"] = hvGzip
		h["Content-Length"] = b.gzLen
		if r.Method == http.MethodHead {
			w.WriteHeader(http.StatusOK)
			return nil
		}
		writeWhole(w, b.gz)
		return nil
	}
	h["Content-Length"] = b.rawLen
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return nil
	}
	plain, first, err := b.identity()
	if err != nil {
		return &httpx.UpstreamError{Status: http.StatusBadGateway, Msg: "stored document unreadable: " + err.Error()}
	}
	if first && made != nil {
		made()
	}
	writeWhole(w, plain)
	return nil
}

// Header values shared by every response (never mutated).
var (
	hvVaryEncoding = []string{"Accept-Encoding"}
	hvRevalidate   = []string{"public, max-age=0, must-revalidate"}
	hvTrue         = []string{"true"}
	// X-Cache on files: HIT when served from the disk cache or storage,
	// MISS when fetched from the upstream for this request (prefetch
	// counts them; operators see them in curl -I).
	hvHit, hvMiss = []string{"HIT"}, []string{"MISS"}
	hvGzip        = []string{"gzip"}
)

// ServeMeta sends a stored metadata document: the stored gzip bytes as they
// are when the client accepts gzip (a memory copy), else decompressed.
// Last-Modified comes from the stored object, so replicas agree, and
// If-Modified-Since gets a 304. Headers are assigned in canonical form
// from precomputed values: this is the hottest path of the proxy.
func (core *Core) ServeMeta(w http.ResponseWriter, r *http.Request, res MetaResult, ctype []string) error {
	e := res.Entry
	return serve(w, r, res, ctype, hvVaryEncoding, &e.gzBody, "", nil, func() { core.reweigh(e) })
}

// ServeMetaBody is ServeMeta for a page d rendered from the entry, with
// the entry's validators (Last-Modified; no ETag).
func ServeMetaBody(w http.ResponseWriter, r *http.Request, res MetaResult, ctype []string, d *Doc) error {
	return serve(w, r, res, ctype, hvVaryEncoding, &d.gzBody, "", nil, nil)
}

// serve is the one way a document leaves: headers assigned in canonical
// form from precomputed values (the hottest path of the proxy), a 304 for
// a matching If-None-Match (when the document has an ETag) or
// If-Modified-Since, else the gzip or plain bytes from memory.
func serve(w http.ResponseWriter, r *http.Request, res MetaResult, ctype, vary []string, b *gzBody, etag string, etagH []string, made func()) error {
	h := w.Header()
	h["Content-Type"] = ctype
	h["Vary"] = vary
	h["Cache-Control"] = hvRevalidate
	if etagH != nil {
		h["Etag"] = etagH
	}
	if res.Stale {
		h["X-Mirror-Stale"] = hvTrue
	}
	h["Last-Modified"] = res.Entry.lastModified
	if inm := httpx.HeaderValue(r, "If-None-Match"); inm != "" && etag != "" {
		if etagMatch(inm, etag) {
			return httpx.NoContent(w, http.StatusNotModified)
		}
	} else if notModified(r, res.Entry.mod) {
		return httpx.NoContent(w, http.StatusNotModified)
	}
	return writeGzipDoc(w, r, b, made)
}

func notModified(r *http.Request, mod time.Time) bool {
	ims := httpx.HeaderValue(r, "If-Modified-Since")
	if ims == "" {
		return false
	}
	t, err := http.ParseTime(ims)
	return err == nil && !mod.Truncate(time.Second).After(t)
}

// gzipBytes is the one gzip encoder of documents: rendered pages (fast,
// made once per stored version) and stored metadata (smallest, with the
// envelope in the header).
func gzipBytes(body []byte, level int, h gzip.Header) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, level)
	h.OS = 255 // unknown, as gzip.NewWriter says
	zw.Header = h
	zw.Write(body) // writes to memory cannot fail
	zw.Close()
	return buf.Bytes()
}

// holder is a response writer that can hold a complete response back and
// send it in one write (cork's, which the server installs under
// net/http); the h1 loop writes that way anyway.
type holder interface{ Hold(n int) (release func()) }

// writeWhole sends a complete document from memory (offering it for
// replay first), in one write where the server can.
func writeWhole(w http.ResponseWriter, body []byte) {
	replayBody(w, body)
	if h, ok := find[holder](w); ok {
		if release := h.Hold(len(body)); release != nil {
			defer release()
		}
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// find returns the first writer of w's Unwrap chain (the server's
// wrappers, echo's response among them) that is a T.
func find[T any](w http.ResponseWriter) (T, bool) {
	for {
		if t, ok := w.(T); ok {
			return t, true
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			var zero T
			return zero, false
		}
		w = u.Unwrap()
	}
}
