package proxy

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/mirror-proxy/mirror-proxy/httpx"
	"github.com/mirror-proxy/mirror-proxy/policy"
)

// Token is an access token as configured (AUTH_TOKENS): only the sha256
// of the secret is kept in memory.
type Token struct {
	Name    string
	SHA256  [32]byte
	Read    bool
	Write   bool
	Mirrors map[string]bool // nil: every mirror
}

// ParseTokenSecret turns a configured token value into its sha256: the
// token itself, or "sha256:<hex>" of it (so that the configuration holds
// no secret).
func ParseTokenSecret(v string) ([32]byte, error) {
	var sum [32]byte
	if h, ok := strings.CutPrefix(v, "sha256:"); ok {
		b, err := hex.DecodeString(strings.ToLower(h))
		if err != nil || len(b) != 32 {
			return sum, errors.New(`"sha256:" must be followed by 64 hex digits`)
		}
		copy(sum[:], b)
		return sum, nil
	}
	if len(v) < 16 {
		return sum, errors.New("a token must be at least 16 characters (or given as sha256:<hex>)")
	}
	return sha256.Sum256([]byte(v)), nil
}

// realm is what 401 answers announce.
const realm = `Basic realm="mirror-proxy"`

// presentedToken is the token a request carries: the password of HTTP
// Basic (any username, as package clients send tokens), a Bearer token,
// or the whole header when it is one word (Cargo sends the token as it
// is, as crates.io takes it).
func presentedToken(r *http.Request) (string, bool) {
	h := strings.TrimSpace(r.Header.Get("Authorization"))
	scheme, rest, ok := strings.Cut(h, " ")
	if !ok {
		return h, h != ""
	}
	switch strings.ToLower(scheme) {
	case "bearer":
		return strings.TrimSpace(rest), rest != ""
	case "basic":
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(rest))
		if err != nil {
			return "", false
		}
		_, pw, ok := strings.Cut(string(b), ":")
		return pw, ok && pw != ""
	}
	return "", false
}

// lookupToken finds the configured token whose secret is presented,
// comparing against every one in constant time.
func (s *Server) lookupToken(presented string) *Token {
	sum := sha256.Sum256([]byte(presented))
	var found *Token
	for i := range s.opts.Tokens {
		t := &s.opts.Tokens[i]
		if subtle.ConstantTimeCompare(sum[:], t.SHA256[:]) == 1 && found == nil {
			found = t
		}
	}
	return found
}

// mirrorOfRoute is the mirror a route template belongs to ("/N/..." or
// "/mirror/N/..."), or "" for the server's own routes.
func mirrorOfRoute(route string) string {
	rest := strings.TrimPrefix(route, "/")
	first, rest, _ := strings.Cut(rest, "/")
	if first == "mirror" {
		first, _, _ = strings.Cut(rest, "/")
	}
	return first
}

// authorizer decides who may use a route of mirror name (a write route
// when write): with tokens configured, every request to a mirror needs a
// valid token (reads of a "public" mirror excepted), and writes need a
// write token; without tokens reads are open and writes refused.
// /healthz, /readyz and /metrics are not mirror routes and always open.
// Tokens never appear in logs or answers. It is nil when there is nothing
// to check (reads without tokens, or of a public mirror).
func (s *Server) authorizer(name string, write bool) func(echo.Context) error {
	m, isMirror := s.mirrors[name]
	switch {
	case !isMirror:
		return nil
	case write && len(s.opts.Tokens) == 0:
		return func(c echo.Context) error {
			if err := refuseSnapshotWrite(c); err != nil {
				return err
			}
			return echo.NewHTTPError(http.StatusForbidden, "uploads need a token with the write scope: configure AUTH_TOKENS (see docs/configuration.md)")
		}
	case !write && (len(s.opts.Tokens) == 0 || m.Public):
		return nil
	}
	return func(c echo.Context) error {
		if write {
			if err := refuseSnapshotWrite(c); err != nil {
				return err
			}
		}
		presented, ok := presentedToken(c.Request())
		var t *Token
		if ok {
			t = s.lookupToken(presented)
		}
		if t == nil {
			c.Response().Header().Set("WWW-Authenticate", realm)
			if ok {
				return echo.NewHTTPError(http.StatusUnauthorized, "invalid token")
			}
			return echo.NewHTTPError(http.StatusUnauthorized, "authentication required: send a token as the password of HTTP Basic or as a Bearer token")
		}
		if t.Mirrors != nil && !t.Mirrors[name] {
			return echo.NewHTTPError(http.StatusForbidden, fmt.Sprintf("token %q may not use mirror %q", t.Name, name))
		}
		if (write && !t.Write) || (!write && !t.Read) {
			scope := "read"
			if write {
				scope = "write"
			}
			return echo.NewHTTPError(http.StatusForbidden, fmt.Sprintf("token %q lacks the %s scope", t.Name, scope))
		}
		if !write && t.Write && m.Hosted {
			// A reader that may publish (a publishing client may ask what is
			// held before it uploads); only hosted mirrors care, so
			// others copy no request for it.
			r := c.Request()
			c.SetRequest(r.WithContext(httpx.AsPublisher(r.Context())))
		}
		return nil
	}
}

// tokenName names the configured token r carries, for logs ("" : none,
// or not a configured one). It looks the token up again: only refusals
// ask, so requests carry nothing for it.
func (s *Server) tokenName(r *http.Request) string {
	if presented, ok := presentedToken(r); ok {
		if t := s.lookupToken(presented); t != nil {
			return t.Name
		}
	}
	return ""
}

// refuseSnapshotWrite refuses a write under a dated snapshot's URL.
func refuseSnapshotWrite(c echo.Context) error {
	if _, snap := policy.Snapshot(c.Request()); snap {
		return echo.NewHTTPError(http.StatusMethodNotAllowed, "a dated snapshot is read-only: publish to the mirror's own URL")
	}
	return nil
}
