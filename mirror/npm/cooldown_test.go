package npm_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/fakenpm"
	"github.com/mirror-proxy/mirror-proxy/mirror/mirrortest"
	"github.com/mirror-proxy/mirror-proxy/policy"
	"github.com/mirror-proxy/mirror-proxy/proxy"
)

// Under a 3-day cooldown both representations leave out the young
// version, dist-tags.latest names the newest old-enough one, and the
// young tarball answers 403 with the date.
func TestCooldownHidesYoungVersions(t *testing.T) {
	now := time.Now()
	up := fakenpm.New()
	up.Publish("fresh", fakenpm.Version{Version: "1.0.0", Time: now.Add(-10 * 24 * time.Hour)})
	up.Publish("fresh", fakenpm.Version{Version: "1.1.0", Time: now.Add(-time.Hour)})
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	base := mirrortest.Serve(t, proxy.Mirror{Name: "npm", Type: "npm", URL: up.URL(),
		Cooldown: policy.Cooldown{Age: 72 * time.Hour}})
	for _, accept := range []string{"application/json", "application/vnd.npm.install-v1+json"} {
		_, _, b, _ := mirrortest.Get(t, base+"/fresh", "Accept", accept)
		var p packument
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatal(err)
		}
		if _, young := p.Versions["1.1.0"]; young || p.Versions["1.0.0"].Dist.Tarball == "" || p.DistTags["latest"] != "1.0.0" {
			t.Errorf("%s under the cooldown: versions %v, dist-tags %v", accept, len(p.Versions), p.DistTags)
		}
		if _, young := p.Time["1.1.0"]; young {
			t.Errorf("%s: time lists the hidden version", accept)
		}
	}
	code, _, body, _ := mirrortest.Get(t, base+"/fresh/-/fresh-1.1.0.tgz")
	if code != 403 || !strings.Contains(string(body), "cooldown") || !strings.Contains(string(body), now.Add(71*time.Hour).UTC().Format("2006-01-02")) {
		t.Errorf("tarball of the young version: %d %s", code, body)
	}
	if code, _, _, _ := mirrortest.Get(t, base+"/fresh/-/fresh-1.0.0.tgz"); code != 200 {
		t.Errorf("tarball of the old version: %d", code)
	}
}
