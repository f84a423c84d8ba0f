package h1

import (
	"net/http"
	"net/textproto"
	"net/url"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// parseRequest parses a header block (request line, fields, the empty
// line) into req, or says it is not one for this loop (req is then left
// part-filled). Whatever it
// takes, net/http would parse the same way (FuzzParseRequest checks it);
// whatever it leaves, net/http answers, with its own errors.
func parseRequest(block []byte, req *http.Request) bool {
	s := string(block) // one allocation: every field is a slice of it
	le := strings.Index(s, "\r\n")
	line := s[:le]
	var method string
	switch {
	case strings.HasPrefix(line, "GET "):
		method, line = http.MethodGet, line[4:]
	case strings.HasPrefix(line, "HEAD "):
		method, line = http.MethodHead, line[5:]
	default:
		return false
	}
	target, proto, found := strings.Cut(line, " ")
	if !found || proto != "HTTP/1.1" || len(target) == 0 || target[0] != '/' {
		return false
	}
	u, err := parseTarget(target)
	if err != nil {
		return false
	}

	fields := s[le+2 : len(s)-2] // each field line ends with CRLF
	n := strings.Count(fields, "\r\n")
	h := make(http.Header, n)
	vals := make([]string, n)
	var host string
	hasHost, closeConn := false, false
	for i := 0; len(fields) > 0; i++ {
		end := strings.Index(fields, "\r\n")
		fl := fields[:end]
		fields = fields[end+2:]
		colon := strings.IndexByte(fl, ':')
		if colon <= 0 {
			return false
		}
		name, value := fl[:colon], strings.Trim(fl[colon+1:], " \t")
		if !httpguts.ValidHeaderFieldName(name) || !httpguts.ValidHeaderFieldValue(value) {
			return false
		}
		key := canonicalKey(name)
		switch key {
		case "Host":
			if hasHost || !httpguts.ValidHostHeader(value) {
				return false
			}
			hasHost, host = true, value
			continue
		case "Content-Length", "Transfer-Encoding", "Expect", "Upgrade":
			return false // a body, or something else than a plain request
		case "Connection":
			for _, tok := range strings.Split(value, ",") {
				switch strings.ToLower(strings.TrimSpace(tok)) {
				case "close":
					closeConn = true
				case "upgrade":
					return false
				}
			}
		}
		if old, ok := h[key]; ok {
			h[key] = append(old, value)
			continue
		}
		vals[i] = value
		h[key] = vals[i : i+1 : i+1]
	}
	if !hasHost {
		return false
	}
	// As net/http: "Pragma: no-cache" stands for "Cache-Control: no-cache".
	if p, ok := h["Pragma"]; ok && len(p) > 0 && p[0] == "no-cache" {
		if _, ok := h["Cache-Control"]; !ok {
			h["Cache-Control"] = []string{"no-cache"}
		}
	}
	*req = http.Request{
		Method:     method,
		URL:        u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     h,
		Body:       http.NoBody,
		Host:       host,
		RequestURI: target,
		Close:      closeConn,
	}
	return true
}

// canonicalKey is textproto's canonical form of a field name, without an
// allocation when the client sent it in that form already.
func canonicalKey(name string) string {
	upper := true
	for i := 0; i < len(name); i++ {
		b := name[i]
		if upper && 'a' <= b && b <= 'z' || !upper && 'A' <= b && b <= 'Z' {
			return textproto.CanonicalMIMEHeaderKey(name)
		}
		upper = b == '-'
	}
	return name
}

// parseTarget is url.ParseRequestURI, without its unescaping and
// re-escaping passes for the common target: a path of unreserved
// characters, slashes and the delimiters a path leaves as they are (npm's
// @scope among them), and a query of printable ASCII, which it would take
// as they are (FuzzParseTarget checks that the two agree).
func parseTarget(target string) (*url.URL, error) {
	if target == "" || target[0] != '/' {
		return url.ParseRequestURI(target)
	}
	path, query, hasQuery := strings.Cut(target, "?")
	for i := 0; i < len(path); i++ {
		if c := path[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("/-._~@:+,;=$&", c) >= 0) {
			return url.ParseRequestURI(target)
		}
	}
	for i := 0; i < len(query); i++ {
		if c := query[i]; c <= ' ' || c >= 0x7f {
			return url.ParseRequestURI(target)
		}
	}
	return &url.URL{Path: path, RawQuery: query, ForceQuery: hasQuery && query == ""}, nil
}
