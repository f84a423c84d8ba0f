package fetch

import (
	"net/http"
	"net/netip"
	"testing"

	"github.com/mirror-proxy/mirror-proxy/httpx"
)

type recordRT struct{ got map[string]string }

func (r *recordRT) RoundTrip(req *http.Request) (*http.Response, error) {
	r.got[req.URL.String()] = req.Header.Get("Authorization")
	return &http.Response{StatusCode: 200, Body: http.NoBody, Request: req}, nil
}

// A credential goes to its own scheme, host and port only: not to another
// port of the same host, and never over http when configured for https.
func TestCredentialsKeyedOnOrigin(t *testing.T) {
	for _, tc := range []struct {
		mirror string
		auth   HostAuth
		send   []string
		never  []string
	}{
		{"https://repo.example.com/", HostAuth{Username: "u", Password: "p"},
			[]string{"https://repo.example.com/x", "https://repo.example.com:443/x"},
			[]string{"http://repo.example.com/x", "https://repo.example.com:8443/x", "http://repo.example.com:443/x"}},
		{"http://repo.example.com:8081/", HostAuth{Bearer: "t"},
			[]string{"http://repo.example.com:8081/x"},
			[]string{"http://repo.example.com/x", "https://repo.example.com:8081/x"}},
		{"http://repo.example.com/", HostAuth{Host: "cdn.example.com", Bearer: "t"},
			[]string{"https://cdn.example.com/x"},
			[]string{"http://cdn.example.com/x", "https://cdn.example.com:8443/x", "http://repo.example.com/x"}},
		{"http://repo.example.com/", HostAuth{Host: "http://cdn.example.com:8080", Bearer: "t"},
			[]string{"http://cdn.example.com:8080/x"},
			[]string{"https://cdn.example.com:8080/x", "http://cdn.example.com/x"}},
		{"http://repo.example.com/", HostAuth{Host: "repo.example.com", Bearer: "t"},
			[]string{"http://repo.example.com/x"},
			[]string{"http://repo.example.com:81/x", "https://repo.example.com/x"}},
		{"http://repo.example.com/", HostAuth{GitHubToken: "g"},
			[]string{"https://api.github.com/repos/a/b/zipball/c"},
			[]string{"http://api.github.com/x", "https://codeload.github.com/x", "http://repo.example.com/x"}},
	} {
		c := NewClient(0, Mirror{Name: "m", Type: "composer", URL: tc.mirror, Auth: []HostAuth{tc.auth}, FileHosts: []string{"*"}}, ClientOptions{})
		tr := c.Transport.(*upstreamTransport)
		rec := &recordRT{got: map[string]string{}}
		tr.base = rec
		for _, u := range append(append([]string{}, tc.send...), tc.never...) {
			req, _ := http.NewRequest("GET", u, nil)
			req.Header.Set("Authorization", "from-someone-else")
			if _, err := tr.RoundTrip(req); err != nil {
				t.Fatalf("%s: %v", u, err)
			}
		}
		for _, u := range tc.send {
			if rec.got[u] != tc.auth.header() {
				t.Errorf("mirror %s, auth host %q: %s got %q, want the credential", tc.mirror, tc.auth.Host, u, rec.got[u])
			}
		}
		for _, u := range tc.never {
			if rec.got[u] != "" {
				t.Errorf("mirror %s, auth host %q: %s got %q, want nothing", tc.mirror, tc.auth.Host, u, rec.got[u])
			}
		}
	}
}

// By default only loopback peers are trusted proxies (a spoofed
// X-Forwarded-For from any private address no longer counts);
// TRUSTED_PROXIES replaces that list.
func TestFromTrusted(t *testing.T) {
	defer httpx.TrustProxies(nil)
	for addr, want := range map[string]bool{"127.0.0.1:5": true, "10.1.2.3:80": false, "192.168.0.9:1": false, "[::1]:8": true,
		"[fe80::1]:8": false, "203.0.113.9:443": false, "8.8.8.8:53": false, "garbage": false} {
		if got := httpx.FromTrusted(addr); got != want {
			t.Errorf("default: httpx.FromTrusted(%q) = %v, want %v", addr, got, want)
		}
	}
	httpx.TrustProxies([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")})
	for addr, want := range map[string]bool{"10.1.2.3:80": true, "127.0.0.1:5": false, "192.168.0.9:1": false, "[::ffff:10.0.0.1]:1": true} {
		if got := httpx.FromTrusted(addr); got != want {
			t.Errorf("TRUSTED_PROXIES=10.0.0.0/8: httpx.FromTrusted(%q) = %v, want %v", addr, got, want)
		}
	}
}

// Metadata cannot make the proxy ask another port or scheme of its
// upstream's host (a port scan whose answers tell "404" from
// "unreachable"): only the configured origin, the operator's fileHosts
// and the ecosystem's public file hosts are asked.
func TestOnlyTheConfiguredOriginIsTrusted(t *testing.T) {
	c := NewClient(0, Mirror{Name: "m", Type: "npm", URL: "http://127.0.0.1:4873", FileHosts: []string{"files.internal"}},
		ClientOptions{DefaultFileHosts: []string{"files.example.org"}})
	tr := c.Transport.(*upstreamTransport)
	tr.base = &recordRT{got: map[string]string{}}
	for u, ok := range map[string]bool{
		"http://127.0.0.1:4873/x": true, "http://127.0.0.1:4873/a/b.tgz": true,
		"http://127.0.0.1:22/": false, "http://127.0.0.1:6379/": false, "https://127.0.0.1:4873/x": false,
		"http://127.0.0.1/x": false, "http://localhost:4873/x": false,
		"http://files.internal:9000/x": true, "https://files.example.org/x": true, "http://other.example/x": false,
	} {
		req, _ := http.NewRequest("GET", u, nil)
		_, err := tr.RoundTrip(req)
		if (err == nil) != ok {
			t.Errorf("%s: err %v, want allowed %v", u, err, ok)
		}
	}
}
