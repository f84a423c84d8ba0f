package composer

import (
	"encoding/json"
	"testing"
)

// FuzzP2: any p2 file that CheckP2 accepts expands without panicking,
// and every dist FindDist returns comes from the file with its version.
func FuzzP2(f *testing.F) {
	f.Add([]byte(`{"minified":"composer/2.0","packages":{"a/b":[{"name":"a/b","version":"1.0.0","version_normalized":"1.0.0.0","dist":{"type":"zip","url":"https://x/1.zip","reference":"abc","shasum":""}},{"version":"2.0.0","version_normalized":"2.0.0.0","dist":"__unset"}]}}`), "1.0.0.0", "abc")
	f.Add([]byte(`{"packages":{"a/b":[{"version":"dev-main","version_normalized":"dev-main","source":{"reference":"f00"},"dist":{"url":"https://x/2.zip","reference":""}}]}}`), "dev-main", "f00")
	f.Fuzz(func(t *testing.T, body []byte, version, ref string) {
		if CheckP2(body) != nil {
			return
		}
		vs, err := Expand(body, "a/b")
		if err != nil {
			return
		}
		if d, ok := FindDist(vs, version, ref); ok && d.URL == "" {
			t.Fatalf("found a dist without URL: %+v", d)
		}
	})
}

// FuzzRoot: any root that ParseRoot accepts yields a client root that is
// valid JSON whose URLs all lead to the proxy.
func FuzzRoot(f *testing.F) {
	f.Add([]byte(`{"packages":[],"metadata-url":"/p2/%package%.json","security-advisories":{"metadata":true,"api-url":"https://x/api"},"info":"hi"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := ParseRoot(body)
		if err != nil {
			return
		}
		_ = r.P2URL("https://up.example", "a/b")
		_ = r.AdvisoriesURL("https://up.example")
		out, err := r.ClientRoot("/m", "https://proxy.example/m/api/security-advisories/")
		if err != nil {
			return
		}
		var doc map[string]any
		if err := json.Unmarshal(out, &doc); err != nil {
			t.Fatalf("client root is not JSON: %v", err)
		}
		if doc["metadata-url"] != "/m/p2/%package%.json" {
			t.Fatalf("metadata-url %v", doc["metadata-url"])
		}
	})
}
