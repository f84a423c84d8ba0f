package composer_test

import (
	"crypto/sha1"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/storage/local"

	"github.com/mirror-proxy/mirror-proxy/internal/fakepackagist"
	"github.com/mirror-proxy/mirror-proxy/mirror/composer"
	"github.com/mirror-proxy/mirror-proxy/mirror/mirrortest"
	"github.com/mirror-proxy/mirror-proxy/policy"
	"github.com/mirror-proxy/mirror-proxy/proxy"
)

// Strict mode refuses unlisted packages with a message; a denied version
// leaves the p2 file and its dist is a 403 with the reason.
func TestAllowAndDenyRules(t *testing.T) {
	up := fakepackagist.New()
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	base := mirrortest.Serve(t, proxy.Mirror{Name: "packagist", Type: "composer", URL: up.URL(),
		Rules: policy.Rules{Allow: []string{"acme/*"}, Deny: []policy.Deny{{Name: "acme/foo", Version: "1.1.0"}, {Name: "acme/huge"}}}})
	if code, _, b, _ := mirrortest.Get(t, base+"/p2/other/pkg.json"); code != 404 || !strings.Contains(string(b), "not approved") {
		t.Errorf("unlisted package: %d %s", code, b)
	}
	if code, _, b, _ := mirrortest.Get(t, base+"/p2/acme/huge.json"); code != 404 || !strings.Contains(string(b), "denied") {
		t.Errorf("denied package: %d %s", code, b)
	}
	_, _, b, _ := mirrortest.Get(t, base+"/p2/acme/foo.json")
	vs, err := composer.Expand(b, "acme/foo")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		if v["version"] == "1.1.0" {
			t.Errorf("the denied version is listed")
		}
	}
	if len(vs) == 0 {
		t.Errorf("no version left: %s", b)
	}
	if !strings.Contains(string(b), `"warning":"left out by this mirror: acme/foo 1.1.0 is denied by the mirror's policy`) {
		t.Errorf("the p2 file does not warn about the denied version (Composer prints it):\n%s", b)
	}
	ref := sha1.Sum([]byte("foo1.1"))
	code, _, body, _ := mirrortest.Get(t, base+"/zipball/acme/foo/1.1.0.0/ref"+hex.EncodeToString(ref[:])+".zip")
	if code != 403 || !strings.Contains(string(body), `"warning":"acme/foo 1.1.0 is denied`) {
		t.Errorf("dist of the denied version: %d %s", code, body)
	}
}

// Policies fail closed: a dist in storage whose version the upstream has
// since taken down stays refused by a deny rule, and by the cooldown (its
// release time is no longer known: cooldownUnknown decides).
func TestPoliciesStillApplyOnceTheUpstreamDropsTheVersion(t *testing.T) {
	up := fakepackagist.New()
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	st, _ := local.New(t.TempDir())
	ref := sha1.Sum([]byte("foo1.1"))
	dist := "/zipball/acme/foo/1.1.0.0/ref" + hex.EncodeToString(ref[:]) + ".zip"
	plain := mirrortest.ServeOn(t, st, proxy.Mirror{Name: "packagist", Type: "composer", URL: up.URL()})
	if code, _, b, _ := mirrortest.Get(t, plain+dist); code != 200 {
		t.Fatalf("download before any policy: %d %s", code, b)
	}
	time.Sleep(100 * time.Millisecond) // the commit follows the response
	up.Unpublish("acme/foo", "1.1.0")
	d, _ := policy.ParseDeny("acme/foo@1.1.0")
	for what, m := range map[string]proxy.Mirror{
		"deny rule": {Rules: policy.Rules{Deny: []policy.Deny{d}}},
		"cooldown":  {Cooldown: policy.Cooldown{Age: time.Hour}},
	} {
		m.Name, m.Type, m.URL, m.TTL = "packagist", "composer", up.URL(), time.Millisecond
		base := mirrortest.ServeOn(t, st, m)
		if code, _, b, _ := mirrortest.Get(t, base+dist); code != 403 {
			t.Errorf("%s: the stored dist of a version taken down: %d %.100q, want 403", what, code, b)
		}
	}
}
