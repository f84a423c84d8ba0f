package composer_test

import (
	"strings"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/fakepackagist"
	"github.com/mirror-proxy/mirror-proxy/mirror/composer"
	"github.com/mirror-proxy/mirror-proxy/mirror/mirrortest"
	"github.com/mirror-proxy/mirror-proxy/policy"
	"github.com/mirror-proxy/mirror-proxy/proxy"
)

// Under a 3-day cooldown the p2 file lists only versions released more
// than 3 days ago, and the dist of a younger one answers 403 with the
// date; an exempt package lists everything.
func TestCooldownHidesYoungVersions(t *testing.T) {
	now := time.Now()
	up := fakepackagist.New()
	up.Publish("acme/fresh", fakepackagist.Version{Version: "1.0.0", Ref: strings.Repeat("a", 40), Time: now.Add(-10 * 24 * time.Hour)})
	up.Publish("acme/fresh", fakepackagist.Version{Version: "1.1.0", Ref: strings.Repeat("b", 40), Time: now.Add(-time.Hour)})
	up.Publish("trusted/fresh", fakepackagist.Version{Version: "2.0.0", Ref: strings.Repeat("c", 40), Time: now.Add(-time.Hour)})
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	base := mirrortest.Serve(t, proxy.Mirror{Name: "packagist", Type: "composer", URL: up.URL(),
		Cooldown: policy.Cooldown{Age: 72 * time.Hour, Exempt: []string{"trusted/*"}}})

	_, _, b, _ := mirrortest.Get(t, base+"/p2/acme/fresh.json")
	vs, err := composer.Expand(b, "acme/fresh")
	if err != nil || len(vs) != 1 || vs[0]["version"] != "1.0.0" {
		t.Errorf("p2 under the cooldown: %v %s", err, b)
	}
	_, _, b, _ = mirrortest.Get(t, base+"/p2/trusted/fresh.json")
	if vs, _ := composer.Expand(b, "trusted/fresh"); len(vs) != 1 {
		t.Errorf("exempt package: %s", b)
	}
	code, _, body, _ := mirrortest.Get(t, base+"/zipball/acme/fresh/1.1.0.0/ref"+strings.Repeat("b", 40)+".zip")
	if code != 403 || !strings.Contains(string(body), "cooldown") || !strings.Contains(string(body), now.Add(71*time.Hour).UTC().Format("2006-01-02")) {
		t.Errorf("dist of the young version: %d %s", code, body)
	}
	if code, _, _, _ := mirrortest.Get(t, base+"/zipball/acme/fresh/1.0.0.0/ref"+strings.Repeat("a", 40)+".zip"); code != 200 {
		t.Errorf("dist of the old version: %d", code)
	}
}
