// Package pypi knows the Python simple repository API (PEP 503, 592, 629,
// 658, 691, 700, 714): name normalization, content negotiation, reading an
// upstream's JSON or HTML project page into one model, and rendering that
// model as JSON or HTML with file URLs that lead to the proxy. It knows
// nothing of HTTP servers, caches or storage.
package pypi

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"mime"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"

	xhtml "golang.org/x/net/html"
)

// Media types of the simple API.
const (
	JSONType = "application/vnd.pypi.simple.v1+json"
	HTMLType = "application/vnd.pypi.simple.v1+html"
	TextHTML = "text/html"
)

// UpstreamAccept is what the proxy asks upstreams for: JSON first (it
// carries sizes, upload times and yank reasons), HTML as a fallback.
const UpstreamAccept = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"

// Normalize is PEP 503's name normalization: lower case, and each run of
// "-", "_" and "." one "-". A name already normal is returned as it is
// (every warm request normalizes one; no regular expression, no copy).
func Normalize(name string) string {
	if isNormal(name) {
		return name
	}
	b := make([]byte, 0, len(name))
	for i := 0; i < len(name); i++ {
		if isSep(name[i]) {
			if i > 0 && isSep(name[i-1]) {
				continue
			}
			b = append(b, '-')
			continue
		}
		b = append(b, name[i])
	}
	return strings.ToLower(string(b))
}

func isSep(c byte) bool { return c == '-' || c == '_' || c == '.' }

// isNormal: no upper case, no "_" or ".", no "--", ASCII only.
func isNormal(name string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' || c == '_' || c == '.' || c >= 0x80 || c == '-' && i > 0 && name[i-1] == '-' {
			return false
		}
	}
	return true
}

// ValidName reports whether name (any case) is a valid project name
// (PEP 508: ASCII letters and digits, with ".", "_" and "-" inside).
func ValidName(name string) bool {
	if len(name) == 0 || len(name) > 200 || isSep(name[0]) || isSep(name[len(name)-1]) {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || isSep(c)) {
			return false
		}
	}
	return true
}

// ErrNotAcceptable: the client accepts neither JSON nor HTML.
var ErrNotAcceptable = errors.New("none of the simple API's formats (application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html, text/html) is acceptable")

// Negotiate picks the response type for an Accept header and an optional
// ?format= value: JSONType, HTMLType or TextHTML (for HTML, the type the
// client named). No Accept (or */*) gets HTML, as PyPI does.
func Negotiate(accept, format string) (string, error) {
	if format != "" {
		// A literal "+" in a query string arrives as a space.
		switch f := strings.ReplaceAll(strings.ToLower(format), " ", "+"); f {
		case JSONType, "application/vnd.pypi.simple.latest+json", "json":
			return JSONType, nil
		case HTMLType, "application/vnd.pypi.simple.latest+html", "html":
			return HTMLType, nil
		case TextHTML:
			return TextHTML, nil
		}
		return "", ErrNotAcceptable
	}
	if strings.TrimSpace(accept) == "" {
		return TextHTML, nil
	}
	// One media type without parameters (uv, curl -H, the warm path of
	// most scripts): no parsing.
	if !strings.ContainsAny(accept, ",;") {
		switch strings.ToLower(strings.TrimSpace(accept)) {
		case JSONType, "application/vnd.pypi.simple.latest+json":
			return JSONType, nil
		case HTMLType, "application/vnd.pypi.simple.latest+html":
			return HTMLType, nil
		case TextHTML, "text/*", "*/*":
			return TextHTML, nil
		}
	}
	type rng struct {
		typ string
		q   float64
	}
	var buf [4]rng
	ranges := buf[:0]
	for rest := accept; rest != ""; {
		var part string
		part, rest, _ = strings.Cut(rest, ",")
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		ranges = append(ranges, rng{strings.ToLower(mt), q})
	}
	// qOf is the q of the most specific range matching t.
	qOf := func(t string) float64 {
		best, spec := 0.0, -1
		major := t[:strings.IndexByte(t, '/')]
		for _, r := range ranges {
			s := -1
			switch {
			case r.typ == t:
				s = 2
			case r.typ == major+"/*":
				s = 1
			case r.typ == "*/*":
				s = 0
			}
			if s > spec {
				best, spec = r.q, s
			}
		}
		return best
	}
	qJSON := max(qOf(JSONType), qOf("application/vnd.pypi.simple.latest+json"))
	qHTML := max(qOf(HTMLType), qOf("application/vnd.pypi.simple.latest+html"))
	qText := qOf(TextHTML)
	switch {
	case qJSON == 0 && qHTML == 0 && qText == 0:
		return "", ErrNotAcceptable
	case qJSON > 0 && qJSON >= qHTML && qJSON > qText:
		return JSONType, nil
	}
	// HTML: echo the type the client named; a wildcard gets text/html.
	for _, r := range ranges {
		if (r.typ == HTMLType || r.typ == "application/vnd.pypi.simple.latest+html") && r.q > 0 && qHTML >= qText {
			return HTMLType, nil
		}
	}
	return TextHTML, nil
}

// File is one distribution file of a project. Fields not listed are kept
// in Extra and passed on (clients must ignore unknown keys).
type File struct {
	Filename       string
	URL            string // absolute upstream URL
	Hashes         map[string]string
	RequiresPython string
	CoreMetadata   any // nil (unknown), false, true, or map[string]string of hashes
	Yanked         any // nil/false, true, or a reason string
	Size           *int64
	UploadTime     string
	Extra          map[string]json.RawMessage
}

// Project is the model of one project page.
type Project struct {
	Name     string
	Versions []string
	Files    []File
	Extra    map[string]json.RawMessage // unknown top-level keys
	Meta     map[string]json.RawMessage // meta without api-version
	// Skipped counts the upstream's entries that were left out because the
	// proxy could not serve them (not stored).
	Skipped int
}

var knownFileKeys = map[string]bool{"filename": true, "url": true, "hashes": true, "requires-python": true,
	"core-metadata": true, "dist-info-metadata": true, "data-dist-info-metadata": true, "yanked": true, "size": true, "upload-time": true}

// ParseProject reads an upstream page in either format. base is the final
// URL of the page (relative file URLs resolve against it); contentType is
// the upstream's.
func ParseProject(body []byte, contentType, base string) (*Project, error) {
	mt, _, _ := mime.ParseMediaType(contentType)
	switch {
	case strings.HasSuffix(mt, "+json") || mt == "application/json":
		return parseJSON(body, base)
	case mt == HTMLType || mt == TextHTML || mt == "" || strings.HasSuffix(mt, "+html"):
		return parseHTML(body, base)
	}
	return nil, fmt.Errorf("upstream page has Content-Type %q, neither the simple API's JSON nor HTML", contentType)
}

func resolve(base *url.URL, ref string) (string, error) {
	u, err := url.Parse(ref)
	if err != nil {
		return "", err
	}
	u = base.ResolveReference(u)
	u.Fragment = ""
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("file URL %q is not http(s)", ref)
	}
	return u.String(), nil
}

func parseJSON(body []byte, base string) (*Project, error) {
	b, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("project page is not JSON: %w", err)
	}
	p := &Project{Extra: map[string]json.RawMessage{}}
	if err := json.Unmarshal(raw["name"], &p.Name); err != nil {
		return nil, errors.New("project page has no name")
	}
	_ = json.Unmarshal(raw["versions"], &p.Versions)
	if m, ok := raw["meta"]; ok {
		_ = json.Unmarshal(m, &p.Meta)
		delete(p.Meta, "api-version")
	}
	for k, v := range raw {
		switch k {
		case "name", "versions", "files", "meta":
		default:
			p.Extra[k] = v
		}
	}
	var files []map[string]json.RawMessage
	if err := json.Unmarshal(raw["files"], &files); err != nil {
		return nil, fmt.Errorf("project page files: %w", err)
	}
	for _, rf := range files {
		var f File
		// An entry the proxy could not serve (no usable file name, a URL
		// that is not http(s)) is skipped, never stored: one bad entry must
		// not fail the whole project.
		if err := json.Unmarshal(rf["filename"], &f.Filename); err != nil || !ValidFilename(f.Filename) {
			p.Skipped++
			continue
		}
		var u string
		_ = json.Unmarshal(rf["url"], &u)
		if f.URL, err = resolve(b, u); err != nil {
			p.Skipped++
			continue
		}
		_ = json.Unmarshal(rf["hashes"], &f.Hashes)
		f.Hashes = cleanHashes(f.Hashes)
		_ = json.Unmarshal(rf["requires-python"], &f.RequiresPython)
		cm := rf["core-metadata"]
		if cm == nil {
			cm = rf["dist-info-metadata"]
		}
		if cm != nil {
			var v any
			_ = json.Unmarshal(cm, &v)
			f.CoreMetadata = hashesOrBool(v)
		}
		if y := rf["yanked"]; y != nil {
			_ = json.Unmarshal(y, &f.Yanked)
		}
		if s := rf["size"]; s != nil {
			var n int64
			if json.Unmarshal(s, &n) == nil && n >= 0 {
				f.Size = &n
			}
		}
		_ = json.Unmarshal(rf["upload-time"], &f.UploadTime)
		for k, v := range rf {
			if !knownFileKeys[k] {
				if f.Extra == nil {
					f.Extra = map[string]json.RawMessage{}
				}
				f.Extra[k] = v
			}
		}
		p.Files = append(p.Files, f)
	}
	return p, nil
}

// hashLen is the hex length of the digest algorithms the simple API uses;
// a hash of another algorithm must be hex of at most 128 digits.
var hashLen = map[string]int{"md5": 32, "sha1": 40, "sha224": 56, "sha256": 64, "sha384": 96, "sha512": 128,
	"blake2b_256": 64, "sha3_256": 64, "sha3_512": 128}

var algRe = regexp.MustCompile(`^[a-z0-9_]{1,32}$`)

// ValidHash reports whether value is a plausible hex digest of alg: an
// upstream's hash goes into HTML attributes and URLs, so anything else
// (markup, paths) is dropped at parse time.
func ValidHash(alg, value string) bool {
	if !algRe.MatchString(alg) || value == "" || len(value) > 128 {
		return false
	}
	if n, ok := hashLen[alg]; ok && len(value) != n {
		return false
	}
	for i := 0; i < len(value); i++ {
		c := value[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// cleanHashes keeps the valid hashes, algorithms and values lowercased.
func cleanHashes(in map[string]string) map[string]string {
	out := make(map[string]string, len(in))
	for alg, v := range in {
		alg, v = strings.ToLower(alg), strings.ToLower(v)
		if ValidHash(alg, v) {
			out[alg] = v
		}
	}
	return out
}

var filenameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+!~-]{0,250}$`)

// ValidFilename reports whether a distribution file name can be served by
// the proxy (it becomes a URL segment and a storage key segment).
func ValidFilename(name string) bool { return filenameRe.MatchString(name) }

func hashesOrBool(v any) any {
	switch x := v.(type) {
	case bool:
		return x
	case map[string]any:
		m := map[string]string{}
		for k, h := range x {
			if s, ok := h.(string); ok {
				m[k] = s
			}
		}
		m = cleanHashes(m)
		if len(m) == 0 {
			return true // advertised, but with no usable hash
		}
		return m
	}
	return nil
}

// parseFragmentHash reads "sha256=<hex>".
func parseHashPair(s string) (string, string, bool) {
	alg, hexv, ok := strings.Cut(s, "=")
	if !ok || alg == "" || hexv == "" {
		return "", "", false
	}
	return strings.ToLower(alg), strings.ToLower(hexv), true
}

func parseHTML(body []byte, base string) (*Project, error) {
	b, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	doc, err := xhtml.Parse(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("project page is not HTML: %w", err)
	}
	p := &Project{}
	var walk func(n *xhtml.Node)
	walk = func(n *xhtml.Node) {
		if n.Type == xhtml.ElementNode && n.Data == "base" {
			for _, a := range n.Attr {
				if a.Key == "href" {
					if nb, err := b.Parse(a.Val); err == nil {
						b = nb
					}
				}
			}
		}
		if n.Type == xhtml.ElementNode && n.Data == "a" {
			f := File{}
			var href string
			var hasHref bool
			for _, a := range n.Attr {
				switch a.Key {
				case "href":
					href, hasHref = a.Val, true
				case "data-requires-python":
					f.RequiresPython = a.Val // the parser has unescaped &gt; already
				case "data-yanked":
					if a.Val == "" {
						f.Yanked = true
					} else {
						f.Yanked = a.Val
					}
				case "data-core-metadata", "data-dist-info-metadata":
					if f.CoreMetadata != nil && a.Key == "data-dist-info-metadata" {
						continue // data-core-metadata wins
					}
					if a.Val == "true" || a.Val == "" {
						f.CoreMetadata = true
					} else if alg, h, ok := parseHashPair(a.Val); ok && ValidHash(alg, h) {
						f.CoreMetadata = map[string]string{alg: h}
					} else {
						f.CoreMetadata = true // advertised, with no usable hash
					}
				}
			}
			if hasHref {
				if u, err := url.Parse(href); err == nil && u.Fragment != "" {
					if alg, h, ok := parseHashPair(u.Fragment); ok && ValidHash(alg, h) {
						f.Hashes = map[string]string{alg: h}
					}
				}
				abs, err := resolve(b, href)
				if err == nil {
					f.URL = abs
					f.Filename = strings.TrimSpace(text(n))
					if f.Filename == "" {
						f.Filename = pathBase(abs)
					}
					if f.Hashes == nil {
						f.Hashes = map[string]string{}
					}
				}
				if err == nil && ValidFilename(f.Filename) {
					p.Files = append(p.Files, f)
				} else {
					p.Skipped++
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return p, nil
}

func pathBase(u string) string {
	pu, err := url.Parse(u)
	if err != nil {
		return ""
	}
	s := pu.Path
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		s = s[i+1:]
	}
	r, _ := url.PathUnescape(s)
	return r
}

func text(n *xhtml.Node) string {
	var sb strings.Builder
	var f func(*xhtml.Node)
	f = func(n *xhtml.Node) {
		if n.Type == xhtml.TextNode {
			sb.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			f(c)
		}
	}
	f(n)
	return sb.String()
}

// Marshal stores the model (upstream URLs kept) as JSON.
func (p *Project) Marshal() ([]byte, error) { return json.Marshal(p.jsonDoc(nil)) }

// Unmarshal reads a stored model.
func Unmarshal(b []byte) (*Project, error) {
	p, err := parseJSON(b, "http://stored.invalid/")
	if err != nil {
		return nil, err
	}
	return p, nil
}

// FileKey identifies a file in the proxy's URL space and storage: its
// sha256 from the index, or "u-" and the sha256 of its upstream URL when
// the index gives none (then it cannot be verified).
func (f *File) FileKey() string {
	if h := strings.ToLower(f.Hashes["sha256"]); ValidHash("sha256", h) {
		return h
	}
	s := sha256.Sum256([]byte(f.URL))
	return "u-" + hex.EncodeToString(s[:])
}

// MetadataSHA256 is the advertised sha256 of the file's core metadata, or "".
func (f *File) MetadataSHA256() string {
	if m, ok := f.CoreMetadata.(map[string]string); ok && ValidHash("sha256", strings.ToLower(m["sha256"])) {
		return strings.ToLower(m["sha256"])
	}
	return ""
}

// HasMetadata reports whether the upstream advertises a .metadata file.
func (f *File) HasMetadata() bool {
	switch v := f.CoreMetadata.(type) {
	case bool:
		return v
	case map[string]string:
		return true
	}
	return false
}

// FileURL is the URL of a file relative to the project page
// (<mount>/simple/<project>/), pointing at <mount>/files/<project>/<key>/<name>.
func FileURL(project string, f *File) string {
	return "../../files/" + project + "/" + f.FileKey() + "/" + url.PathEscape(f.Filename)
}

func (p *Project) apiVersion() string {
	if len(p.Versions) == 0 && len(p.Files) > 0 {
		return "1.0"
	}
	for i := range p.Files {
		if p.Files[i].Size == nil {
			return "1.0"
		}
	}
	return "1.1"
}

// jsonDoc builds the JSON document; urlFor rewrites file URLs (nil keeps
// the upstream's).
func (p *Project) jsonDoc(urlFor func(*File) string) map[string]any {
	meta := map[string]any{}
	for k, v := range p.Meta {
		meta[k] = v
	}
	api := p.apiVersion()
	meta["api-version"] = api
	doc := map[string]any{"meta": meta, "name": p.Name}
	for k, v := range p.Extra {
		if !strings.HasPrefix(k, "_") || urlFor == nil {
			doc[k] = v
		}
	}
	if p.Versions != nil && (api == "1.1" || urlFor == nil) {
		doc["versions"] = p.Versions
	}
	files := make([]map[string]any, 0, len(p.Files))
	for i := range p.Files {
		f := &p.Files[i]
		m := map[string]any{}
		for k, v := range f.Extra {
			m[k] = v
		}
		m["filename"] = f.Filename
		m["url"] = f.URL
		if urlFor != nil {
			m["url"] = urlFor(f)
		}
		h := f.Hashes
		if h == nil {
			h = map[string]string{}
		}
		m["hashes"] = h
		if f.RequiresPython != "" {
			m["requires-python"] = f.RequiresPython
		}
		if f.CoreMetadata != nil {
			m["core-metadata"] = f.CoreMetadata
		}
		if f.Yanked != nil && f.Yanked != false && f.Yanked != "" {
			m["yanked"] = f.Yanked
		}
		if f.Size != nil {
			m["size"] = *f.Size
		}
		if f.UploadTime != "" {
			m["upload-time"] = f.UploadTime
		}
		files = append(files, m)
	}
	doc["files"] = files
	return doc
}

// RenderJSON is the PEP 691 page a client gets ("core-metadata" only,
// never "dist-info-metadata"; api-version 1.1 only when every file has a
// size).
func (p *Project) RenderJSON(project string) []byte {
	b, _ := json.Marshal(p.jsonDoc(func(f *File) string { return FileURL(project, f) }))
	return b
}

// RenderHTML is the PEP 503 page, with both metadata attributes.
func (p *Project) RenderHTML(project string) []byte {
	var sb strings.Builder
	sb.WriteString("<!DOCTYPE html>\n<html>\n  <head>\n    <meta name=\"pypi:repository-version\" content=\"1.0\">\n")
	fmt.Fprintf(&sb, "    <title>Links for %s</title>\n  </head>\n  <body>\n    <h1>Links for %s</h1>\n", html.EscapeString(p.Name), html.EscapeString(p.Name))
	for i := range p.Files {
		f := &p.Files[i]
		href := FileURL(project, f)
		algs := make([]string, 0, len(f.Hashes))
		for a := range f.Hashes {
			algs = append(algs, a)
		}
		sort.Strings(algs)
		for _, a := range algs {
			if (a == "sha256" || len(algs) == 1) && ValidHash(a, f.Hashes[a]) {
				href += "#" + a + "=" + f.Hashes[a]
				break
			}
		}
		sb.WriteString(`    <a href="` + html.EscapeString(href) + `"`)
		if f.RequiresPython != "" {
			sb.WriteString(` data-requires-python="` + html.EscapeString(f.RequiresPython) + `"`)
		}
		switch y := f.Yanked.(type) {
		case bool:
			if y {
				sb.WriteString(` data-yanked=""`)
			}
		case string:
			if y != "" {
				sb.WriteString(` data-yanked="` + html.EscapeString(y) + `"`)
			}
		}
		if f.HasMetadata() {
			v := "true"
			if h := f.MetadataSHA256(); h != "" {
				v = "sha256=" + h
			}
			v = html.EscapeString(v)
			sb.WriteString(` data-core-metadata="` + v + `" data-dist-info-metadata="` + v + `"`)
		}
		sb.WriteString(">" + html.EscapeString(f.Filename) + "</a><br>\n")
	}
	sb.WriteString("  </body>\n</html>\n")
	return []byte(sb.String())
}

// FindFile returns the file named filename whose key is key.
func (p *Project) FindFile(key, filename string) (*File, bool) {
	for i := range p.Files {
		f := &p.Files[i]
		if f.Filename == filename && f.FileKey() == key {
			return f, true
		}
	}
	return nil, false
}

// Index is the root list of project names.
type Index struct{ Names []string }

// ParseIndex reads an upstream root list (JSON or HTML) into names.
func ParseIndex(body []byte, contentType string) (*Index, error) {
	mt, _, _ := mime.ParseMediaType(contentType)
	idx := &Index{}
	if strings.HasSuffix(mt, "+json") || mt == "application/json" {
		var doc struct {
			Projects []struct {
				Name string `json:"name"`
			} `json:"projects"`
		}
		if err := json.Unmarshal(body, &doc); err != nil {
			return nil, fmt.Errorf("root list is not JSON: %w", err)
		}
		for _, p := range doc.Projects {
			idx.add(p.Name)
		}
		return idx, nil
	}
	z := xhtml.NewTokenizer(bytes.NewReader(body))
	inA := false
	for {
		switch z.Next() {
		case xhtml.ErrorToken:
			if z.Err() == io.EOF {
				return idx, nil
			}
			return nil, z.Err()
		case xhtml.StartTagToken:
			n, _ := z.TagName()
			inA = string(n) == "a"
		case xhtml.EndTagToken:
			inA = false
		case xhtml.TextToken:
			if inA {
				idx.add(strings.TrimSpace(string(z.Text())))
			}
		}
	}
}

// add keeps a name only if it is a valid project name: anything else
// (markup, "javascript:" URLs, line breaks) would end up in an href.
func (x *Index) add(name string) {
	if ValidName(name) {
		x.Names = append(x.Names, name)
	}
}

// MarshalIndex stores the names one per line.
func (x *Index) Marshal() []byte { return []byte(strings.Join(x.Names, "\n")) }

// UnmarshalIndex reads stored names.
func UnmarshalIndex(b []byte) *Index {
	if len(b) == 0 {
		return &Index{}
	}
	x := &Index{}
	for _, n := range strings.Split(string(b), "\n") {
		x.add(n)
	}
	return x
}

// RenderJSON and RenderHTML render the root list; project links are
// relative to <mount>/simple/.
func (x *Index) RenderJSON() []byte {
	var buf bytes.Buffer
	buf.WriteString(`{"meta":{"api-version":"1.0"},"projects":[`)
	for i, n := range x.Names {
		if i > 0 {
			buf.WriteByte(',')
		}
		b, _ := json.Marshal(n)
		buf.WriteString(`{"name":`)
		buf.Write(b)
		buf.WriteByte('}')
	}
	buf.WriteString("]}")
	return buf.Bytes()
}

func (x *Index) RenderHTML() []byte {
	var buf bytes.Buffer
	buf.WriteString("<!DOCTYPE html>\n<html>\n  <head>\n    <meta name=\"pypi:repository-version\" content=\"1.0\">\n    <title>Simple index</title>\n  </head>\n  <body>\n")
	for _, n := range x.Names {
		buf.WriteString(`    <a href="` + html.EscapeString(Normalize(n)) + `/">` + html.EscapeString(n) + "</a>\n")
	}
	buf.WriteString("  </body>\n</html>\n")
	return buf.Bytes()
}
