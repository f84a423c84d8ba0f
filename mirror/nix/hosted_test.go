package nix_test

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"

	"github.com/mirror-proxy/mirror-proxy/mirror/mirrortest"
	"github.com/mirror-proxy/mirror-proxy/mirror/nix"
	"github.com/mirror-proxy/mirror-proxy/proxy"
)

// What nix copy uploads is checked before anything is stored: a NAR must
// have the sha256 its name gives, a narinfo must be for the hash it is
// named by and name a NAR the proxy can verify. What passes is served.
func TestHostedUploads(t *testing.T) {
	base := mirrortest.Serve(t, proxy.Mirror{Name: "nix", Type: "nix", Hosted: true})
	nar := []byte("a NAR's bytes")
	sum := sha256.Sum256(nar)
	narFile := nix.EncodeBase32(sum[:]) + ".nar"
	hash := strings.Repeat("a", 32)
	info := func(h, url string) []byte {
		return []byte(fmt.Sprintf("StorePath: /nix/store/%s-x\nURL: %s\nCompression: none\nFileHash: sha256:%s\nFileSize: %d\nNarHash: sha256:%s\nNarSize: %d\nReferences: \n",
			h, url, nix.EncodeBase32(sum[:]), len(nar), nix.EncodeBase32(sum[:]), len(nar)))
	}
	other := sha256.Sum256([]byte("other"))
	bad := []struct {
		path string
		body []byte
		want string
	}{
		{"/nar/" + nix.EncodeBase32(other[:]) + ".nar", nar, "not the one its name gives"},
		{"/nar/../../x.nar", nar, ""},
		{"/" + strings.Repeat("b", 32) + ".narinfo", info(hash, "nar/"+narFile), "names the store path"},
		{"/" + hash + ".narinfo", info(hash, "https://elsewhere.example/nar/"+narFile), "could not verify"},
		{"/" + hash + ".narinfo", []byte("<html>no</html>"), "HTML"},
		{"/nothing.txt", []byte("x"), ""},
	}
	for _, b := range bad {
		code, body := mirrortest.Do(t, "PUT", base+b.path, b.body)
		if code < 400 || code >= 500 || !strings.Contains(string(body), b.want) {
			t.Errorf("PUT %s: %d %s, want a 4xx saying %q", b.path, code, body, b.want)
		}
	}
	for _, p := range []string{"/nar/" + nix.EncodeBase32(other[:]) + ".nar", "/" + hash + ".narinfo", "/" + strings.Repeat("b", 32) + ".narinfo"} {
		if code, _, _, _ := mirrortest.Get(t, base+p); code != 404 {
			t.Errorf("after refused uploads, %s: %d, want 404", p, code)
		}
	}
	if code, body := mirrortest.Do(t, "PUT", base+"/nar/"+narFile, nar); code != 200 {
		t.Fatalf("PUT nar: %d %s", code, body)
	}
	if code, body := mirrortest.Do(t, "PUT", base+"/"+hash+".narinfo", info(hash, "nar/"+narFile)); code != 200 {
		t.Fatalf("PUT narinfo: %d %s", code, body)
	}
	if code, _, b, _ := mirrortest.Get(t, base+"/"+hash+".narinfo"); code != 200 || !strings.Contains(string(b), "URL: nar/"+narFile) {
		t.Errorf("GET narinfo: %d %s", code, b)
	}
	if code, _, b, _ := mirrortest.Get(t, base+"/nar/"+narFile); code != 200 || string(b) != string(nar) {
		t.Errorf("GET nar: %d %q", code, b)
	}
	if code, _, b, _ := mirrortest.Get(t, base+"/nix-cache-info"); code != 200 || !strings.Contains(string(b), "StoreDir: /nix/store") {
		t.Errorf("nix-cache-info of a hosted cache: %d %s", code, b)
	}
}
