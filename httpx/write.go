package httpx

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// Handler serves one request with net/http's types; an error it returns
// becomes the response (through ErrorOf), unless the response has started.
type Handler func(w http.ResponseWriter, r *http.Request) error

// HeaderJSON is the Content-Type of JSON answers, as a header value that
// is never mutated.
var HeaderJSON = []string{"application/json"}

// Redirect sends the client to url with code.
func Redirect(w http.ResponseWriter, r *http.Request, code int, url string) error {
	http.Redirect(w, r, url, code)
	return nil
}

// WriteJSON answers code with v as JSON.
func WriteJSON(w http.ResponseWriter, code int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return WriteBlob(w, code, "application/json", append(b, '\n'))
}

// WriteText answers code with s as plain text.
func WriteText(w http.ResponseWriter, code int, s string) error {
	return WriteBlob(w, code, "text/plain; charset=utf-8", []byte(s))
}

// WriteBlob answers code with b, of type ctype, with its length.
func WriteBlob(w http.ResponseWriter, code int, ctype string, b []byte) error {
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(code)
	_, err := w.Write(b)
	return err
}

// NoContent answers code with no body.
func NoContent(w http.ResponseWriter, code int) error {
	w.WriteHeader(code)
	return nil
}

// Truncate caps s at n bytes (client input echoed in messages).
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// ContentType is the media type of a stored file, from its name.
func ContentType(key string) string {
	switch {
	case strings.HasSuffix(key, ".zip"), strings.HasSuffix(key, ".whl"):
		return "application/zip"
	case strings.HasSuffix(key, ".tar.gz"), strings.HasSuffix(key, ".tgz"), strings.HasSuffix(key, ".gzip"):
		return "application/gzip"
	case strings.HasSuffix(key, ".tar"):
		return "application/x-tar"
	case strings.HasSuffix(key, ".xz"):
		return "application/x-xz"
	case strings.HasSuffix(key, ".json"):
		return "application/json"
	}
	return "application/octet-stream"
}
