package npm_test

import (
	"encoding/json"
	"strconv"
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

// A packument filtered by a cooldown is replayed as it was made (from the
// abbreviated or full packument and the full one's times) until the next
// held-back version comes of age; then the version appears in both forms.
func TestCooledPackumentReplayedUntilAVersionComesOfAge(t *testing.T) {
	if mirrortest.StdHTTP() {
		t.Skip("replays are made by h1's loop only (HTTP_SERVER=fast)")
	}
	up := fakenpm.New()
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	base := mirrortest.Serve(t, proxy.Mirror{Name: "npm", Type: "npm", URL: up.URL(),
		Cooldown: policy.Cooldown{Age: 72 * time.Hour}, TTL: time.Hour})
	// Published once the proxy is up (its start can take seconds on a
	// loaded machine), to come of age a few seconds from now; publish
	// times have whole seconds.
	ofAge := time.Now().Add(5 * time.Second).Truncate(time.Second)
	up.Publish("soon", fakenpm.Version{Version: "1.0.0", Time: ofAge.Add(-10 * 24 * time.Hour)})
	up.Publish("soon", fakenpm.Version{Version: "2.0.0", Time: ofAge.Add(-72 * time.Hour)})
	replayed := func() int {
		_, _, b, _ := mirrortest.Get(t, strings.TrimSuffix(base, "/npm")+"/metrics")
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "mirror_replayed_responses_total "); ok {
				n, _ := strconv.Atoi(v)
				return n
			}
		}
		return 0
	}
	accepts := []string{"application/json", "application/vnd.npm.install-v1+json"}
	for _, accept := range accepts {
		_, _, first, _ := mirrortest.Get(t, base+"/soon", "Accept", accept)
		if strings.Contains(string(first), `"2.0.0"`) || !strings.Contains(string(first), `"1.0.0"`) {
			t.Fatalf("%s: the young version is not held back: %.300s", accept, first)
		}
		for i := 0; i < 3; i++ {
			if _, _, b, _ := mirrortest.Get(t, base+"/soon", "Accept", accept); string(b) != string(first) {
				t.Fatalf("%s, request %d: %.300s, want the first answer", accept, i, b)
			}
		}
	}
	if n := replayed(); n < 6 {
		t.Errorf("%d filtered packuments replayed, want 6", n)
	}
	time.Sleep(time.Until(ofAge) + 200*time.Millisecond)
	for _, accept := range accepts {
		if _, _, b, _ := mirrortest.Get(t, base+"/soon", "Accept", accept); !strings.Contains(string(b), `"2.0.0"`) {
			t.Errorf("%s: the version came of age, the packument still holds it back (%d bytes)", accept, len(b))
		}
	}
}
