package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

// HostAuth is a credential for one upstream host. It is sent only to that
// host (exact match, port included when given), on every request and every
// redirect hop that goes there, and never anywhere else.
type HostAuth struct {
	// Host is host or host:port; empty means the mirror URL's host.
	Host     string `json:"host"`
	Username string `json:"username"`
	Password string `json:"password"`
	// Bearer is sent as "Authorization: Bearer <token>".
	Bearer string `json:"bearer"`
	// GitHubToken is sent as "Authorization: token <token>" (GitHub's API);
	// its host defaults to api.github.com.
	GitHubToken string `json:"githubToken"`
}

// Validate checks that exactly one kind of credential is given.
func (a HostAuth) Validate() error {
	kinds := 0
	if a.Username != "" || a.Password != "" {
		kinds++
	}
	if a.Bearer != "" {
		kinds++
	}
	if a.GitHubToken != "" {
		kinds++
	}
	if kinds != 1 {
		return errors.New("each entry needs exactly one of username/password, bearer or githubToken")
	}
	if strings.ContainsAny(a.Host, "/@ ") {
		return fmt.Errorf("host %q must be a bare host or host:port", a.Host)
	}
	return nil
}

func (a HostAuth) header() string {
	switch {
	case a.Bearer != "":
		return "Bearer " + a.Bearer
	case a.GitHubToken != "":
		return "token " + a.GitHubToken
	}
	r := http.Request{Header: http.Header{}}
	r.SetBasicAuth(a.Username, a.Password)
	return r.Header.Get("Authorization")
}

// authTransport sets (or strips) Authorization on every request, redirects
// included, according to the request's host alone.
type authTransport struct {
	base  http.RoundTripper
	creds map[string]string // host or host:port → Authorization value
}

func (t *authTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	auth, ok := t.creds[r.URL.Host]
	if !ok {
		auth, ok = t.creds[r.URL.Hostname()]
	}
	if ok || r.Header.Get("Authorization") != "" {
		r = r.Clone(r.Context())
		r.Header.Del("Authorization")
		if ok {
			r.Header.Set("Authorization", auth)
		}
	}
	return t.base.RoundTrip(r)
}

// newUpstreamClient is the HTTP client a mirror uses for its upstream and
// the file URLs its metadata names. defaultHost is the mirror URL's host.
func newUpstreamClient(timeout time.Duration, defaultHost string, auth []HostAuth) *http.Client {
	base := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          200,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		ExpectContinueTimeout: time.Second,
		// Bodies are passed on as they come: ask for no transparent
		// decompression, so sizes and hashes are those of the real bytes.
		DisableCompression: true,
	}
	creds := map[string]string{}
	for _, a := range auth {
		host := a.Host
		if host == "" {
			host = defaultHost
			if a.GitHubToken != "" {
				host = "api.github.com"
			}
		}
		creds[host] = a.header()
	}
	return &http.Client{
		Transport: &authTransport{base: base, creds: creds},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 10 {
				return errors.New("stopped after 10 redirects")
			}
			if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				return fmt.Errorf("redirect to a non-HTTP URL %q refused", req.URL.Redacted())
			}
			return nil
		},
	}
}
