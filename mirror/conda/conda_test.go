package conda_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/condaclient"
	"github.com/mirror-proxy/mirror-proxy/internal/fakeconda"
	"github.com/mirror-proxy/mirror-proxy/mirror/conda"
	"github.com/mirror-proxy/mirror-proxy/mirror/mirrortest"
	"github.com/mirror-proxy/mirror-proxy/policy"
	"github.com/mirror-proxy/mirror-proxy/proxy"
	"github.com/mirror-proxy/mirror-proxy/storage/local"
)

func startUp(t *testing.T, absolute bool) *fakeconda.Server {
	up := fakeconda.New()
	up.AbsoluteBase = absolute
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(up.Stop)
	return up
}

// An upstream whose base_url and shards_base_url are absolute (a CDN):
// clients are sent back to the proxy (base_url dropped from
// repodata.json, relative bases in the shard index), which fetches from
// the CDN; the compressed forms, which it does not rewrite, are a 404.
func TestAbsoluteBaseURLs(t *testing.T) {
	up := startUp(t, true)
	st, _ := local.New(t.TempDir())
	base := mirrortest.ServeOn(t, st, proxy.Mirror{Name: "c", Type: "conda", URL: up.URL()})
	_, _, b, _ := mirrortest.Get(t, base+"/noarch/repodata.json")
	if strings.Contains(string(b), "base_url") || strings.Contains(string(b), "/cdn/") {
		t.Errorf("repodata.json keeps the absolute base_url: %.300s", b)
	}
	if code, _, _, _ := mirrortest.Get(t, base+"/noarch/repodata.json.zst"); code != 404 {
		t.Errorf("repodata.json.zst: %d, want 404", code)
	}
	for _, mode := range []condaclient.Mode{condaclient.Plain, condaclient.Sharded} {
		c := &condaclient.Client{Channel: base}
		recs, err := c.Install("pyapp", "noarch", mode)
		if err != nil || len(recs) != 2 {
			t.Fatalf("mode %d: %v %v", mode, recs, err)
		}
		for _, u := range c.Requests {
			if !strings.HasPrefix(u, base) {
				t.Errorf("mode %d: the client was sent to %s", mode, u)
			}
		}
		// The commit follows the response: wait for it (under load it can
		// take a while), so that the next mode finds the package stored.
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if _, err := st.Stat(context.Background(), "mirror-dist/c/noarch/libdep-1.1-0.conda"); err == nil {
				break
			}
		}
	}
	if up.Hits("/cdn/noarch/libdep-1.1-0.conda") != 1 {
		t.Errorf("the package came from the CDN path %d times, want 1", up.Hits("/cdn/noarch/libdep-1.1-0.conda"))
	}
}

// A cooldown and a deny rule filter repodata.json; the shard index is then
// a 404 and files of hidden records are a 403.
func TestPolicies(t *testing.T) {
	up := startUp(t, false)
	up.Publish(fakeconda.Package{Name: "fresh", Version: "1.0", Build: "0", Subdir: "noarch", Time: time.Now()})
	base := mirrortest.Serve(t, proxy.Mirror{Name: "c", Type: "conda", URL: up.URL(),
		Cooldown: policy.Cooldown{Age: 72 * time.Hour}, Rules: policy.Rules{Deny: []policy.Deny{{Name: "libdep", Version: "1.1"}}}})
	_, _, b, _ := mirrortest.Get(t, base+"/noarch/repodata.json")
	rd, err := conda.ParseRepodata(b)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for f := range rd.Records {
		got = append(got, f)
	}
	if _, ok := rd.Records["libdep-1.0-0.tar.bz2"]; !ok || len(rd.Records) != 2 {
		t.Errorf("filtered repodata lists %v, want libdep 1.0 and pyapp", got)
	}
	if code, _, _, _ := mirrortest.Get(t, base+"/noarch/repodata_shards.msgpack.zst"); code != 404 {
		t.Errorf("shard index under a policy: %d, want 404", code)
	}
	code, _, body, _ := mirrortest.Get(t, base+"/noarch/fresh-1.0-0.conda")
	if code != 403 || !strings.Contains(string(body), "cooldown") {
		t.Errorf("young package: %d %s", code, body)
	}
	code, _, body, _ = mirrortest.Get(t, base+"/noarch/libdep-1.1-0.conda")
	if code != 403 || !strings.Contains(string(body), "denied") {
		t.Errorf("denied package: %d %s", code, body)
	}
	var doc map[string]json.RawMessage
	if json.Unmarshal(b, &doc) != nil || doc["repodata_version"] == nil {
		t.Errorf("other keys of repodata.json were lost: %.200s", b)
	}
}

// Uploads are refused when the archive and its name disagree, and a
// different package under a published name is a 409.
func TestHostedUploadChecks(t *testing.T) {
	base := mirrortest.Serve(t, proxy.Mirror{Name: "c", Type: "conda", Hosted: true})
	p := fakeconda.Package{Name: "x", Version: "1.0", Build: "0", Subdir: "noarch"}
	put := func(path string, body []byte) (int, string) {
		code, b := mirrortest.Do(t, "PUT", base+path, body)
		return code, string(b)
	}
	if code, b := put("/linux-64/"+p.Filename(), fakeconda.Build(p)); code != 400 || !strings.Contains(b, "subdir") {
		t.Errorf("wrong subdir: %d %s", code, b)
	}
	if code, b := put("/noarch/x-1.1-0.conda", fakeconda.Build(p)); code != 400 || !strings.Contains(b, "says x-1.0-0.conda") {
		t.Errorf("wrong name: %d %s", code, b)
	}
	if code, b := put("/noarch/"+p.Filename(), []byte("not a zip")); code != 400 {
		t.Errorf("garbage: %d %s", code, b)
	}
	if code, _, _, _ := mirrortest.Get(t, base+"/noarch/"+p.Filename()); code != 404 {
		t.Errorf("after refused uploads the file answers %d, want 404", code)
	}
	if recs, err := (&condaclient.Client{Channel: base}).Records("noarch", condaclient.Plain); err != nil || len(recs) != 0 {
		t.Errorf("after refused uploads the repodata lists %v (%v)", recs, err)
	}
	if code, b := put("/noarch/"+p.Filename(), fakeconda.Build(p)); code != 201 {
		t.Fatalf("upload: %d %s", code, b)
	}
	p2 := p
	p2.Depends = []string{"other"}
	if code, b := put("/noarch/"+p.Filename(), fakeconda.Build(p2)); code != 409 {
		t.Errorf("other contents under the same name: %d %s", code, b)
	}
	bz := fakeconda.Package{Name: "y", Version: "2.0", Build: "1", Subdir: "noarch", Format: "tar.bz2"}
	if code, b := put("/noarch/"+bz.Filename(), fakeconda.Build(bz)); code != 201 {
		t.Errorf(".tar.bz2 upload: %d %s", code, b)
	}
	recs, err := (&condaclient.Client{Channel: base}).Records("noarch", condaclient.Plain)
	if err != nil || len(recs) != 2 {
		t.Errorf("hosted repodata: %v %v", recs, err)
	}
}

// One file name built for two subdirs is two packages: publishing it to
// noarch keeps linux-64's record and bytes, each subdir's repodata lists
// its own (a hosted-only channel's derived repodata was keyed without the
// subdir), and each download is its own build.
func TestHostedSameFileNameInTwoSubdirs(t *testing.T) {
	base := mirrortest.Serve(t, proxy.Mirror{Name: "c", Type: "conda", Hosted: true})
	lin := fakeconda.Package{Name: "p", Version: "1.0", Build: "0", Subdir: "linux-64", Format: "tar.bz2", Depends: []string{"libc"}}
	noa := fakeconda.Package{Name: "p", Version: "1.0", Build: "0", Subdir: "noarch", Format: "tar.bz2"}
	bl, bn := fakeconda.Build(lin), fakeconda.Build(noa)
	for _, c := range []struct {
		p fakeconda.Package
		b []byte
	}{{lin, bl}, {noa, bn}} {
		// The first subdir's repodata is read before the second upload,
		// so that a derived copy is there to be confused.
		if code, b := mirrortest.Do(t, "PUT", base+"/"+c.p.Subdir+"/"+c.p.Filename(), c.b); code != 201 {
			t.Fatalf("upload to %s: %d %s", c.p.Subdir, code, b)
		}
		(&condaclient.Client{Channel: base}).Records(c.p.Subdir, condaclient.Plain)
	}
	for _, c := range []struct {
		subdir string
		want   []byte
	}{{"linux-64", bl}, {"noarch", bn}} {
		recs, err := (&condaclient.Client{Channel: base}).Records(c.subdir, condaclient.Plain)
		if err != nil || len(recs) != 1 {
			t.Fatalf("%s repodata: %v %v", c.subdir, recs, err)
		}
		sum := sha256.Sum256(c.want)
		if recs[0].SHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("%s repodata lists %+v, want its own build", c.subdir, recs[0])
		}
		if code, _, b, _ := mirrortest.Get(t, base+"/"+c.subdir+"/"+lin.Filename()); code != 200 || !bytes.Equal(b, c.want) {
			t.Errorf("%s download: %d, %d bytes, not its own build", c.subdir, code, len(b))
		}
	}
	// Other bytes under a published (subdir, file) are refused, and change
	// nothing; the same bytes again succeed.
	lin2 := lin
	lin2.Depends = []string{"evil"}
	if code, b := mirrortest.Do(t, "PUT", base+"/linux-64/"+lin.Filename(), fakeconda.Build(lin2)); code != 409 {
		t.Errorf("other bytes: %d %s", code, b)
	}
	if code, b := mirrortest.Do(t, "PUT", base+"/linux-64/"+lin.Filename(), bl); code/100 != 2 {
		t.Errorf("the same bytes again: %d %s", code, b)
	}
	if code, _, b, _ := mirrortest.Get(t, base+"/linux-64/"+lin.Filename()); code != 200 || !bytes.Equal(b, bl) {
		t.Errorf("linux-64 download after the refused upload: %d, %d bytes", code, len(b))
	}
}

// Policies fail closed: a package in storage that the upstream has since
// taken down stays refused by a deny rule, and by the cooldown (its
// timestamp is no longer known: cooldownUnknown decides).
func TestPoliciesStillApplyOnceTheUpstreamDropsThePackage(t *testing.T) {
	up := startUp(t, false)
	st, _ := local.New(t.TempDir())
	file := "/noarch/libdep-1.1-0.conda"
	plain := mirrortest.ServeOn(t, st, proxy.Mirror{Name: "c", Type: "conda", URL: up.URL()})
	if code, _, b, _ := mirrortest.Get(t, plain+file); code != 200 {
		t.Fatalf("download before any policy: %d %.100q", code, b)
	}
	time.Sleep(100 * time.Millisecond) // the commit follows the response
	up.Remove("noarch", "libdep-1.1-0.conda")
	for what, m := range map[string]proxy.Mirror{
		"deny rule": {Rules: policy.Rules{Deny: []policy.Deny{{Name: "libdep", Version: "1.1"}}}},
		"cooldown":  {Cooldown: policy.Cooldown{Age: time.Hour}},
	} {
		m.Name, m.Type, m.URL, m.TTL = "c", "conda", up.URL(), time.Millisecond
		base := mirrortest.ServeOn(t, st, m)
		if code, _, b, _ := mirrortest.Get(t, base+file); code != 403 {
			t.Errorf("%s: the stored file of a package taken down: %d %.100q, want 403", what, code, b)
		}
	}
}
