package e2e

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/condaclient"
	"github.com/mirror-proxy/mirror-proxy/internal/fakeconda"
	"github.com/mirror-proxy/mirror-proxy/internal/testenv"
)

var condaModes = []struct {
	name string
	mode condaclient.Mode
}{{"repodata.json", condaclient.Plain}, {"repodata.json.zst", condaclient.Zstd}, {"shards", condaclient.Sharded}}

func condaInstall(t *testing.T, channel, spec, subdir string, mode condaclient.Mode) []condaclient.Record {
	t.Helper()
	c := &condaclient.Client{Channel: channel}
	recs, err := c.Install(spec, subdir, mode)
	if err != nil {
		t.Fatalf("install %s from %s: %v\nrequests: %v", spec, channel, err, c.Requests)
	}
	return recs
}

func files(recs []condaclient.Record) string {
	var out []string
	for _, r := range recs {
		out = append(out, r.File)
	}
	return strings.Join(out, " ")
}

// A conda client written in Go (there is none on Debian) resolves and
// downloads a package and its dependency through the proxy on S3, from
// plain, zstd and sharded repodata, then again with the upstream down; a
// tampered package is never stored; a package uploaded to a hosted
// channel is in its repodata at once.
func TestCondaWithGoClient(t *testing.T) {
	testenv.Deadline(t, 3*time.Minute)
	s3 := testenv.StartS3(t)
	redis := testenv.StartRedis(t)
	bucket := s3.NewBucket(t)
	up := fakeconda.New()
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	env := map[string]string{
		"STORAGE_SOURCE": "s3", "STORAGE_AWS_BUCKET": bucket, "STORAGE_AWS_ARGS": s3.ArgsJSON(),
		"MIRRORS":     `[{"name":"conda","type":"conda","url":"` + up.URL() + `"},{"name":"private","type":"conda","hosted":true}]`,
		"AUTH_TOKENS": hostedTokensJSON(), "REDIS_URL": redis.URL,
	}
	px := startProxy(t, env)
	channel := "http://dev:" + e2eRead + "@" + strings.TrimPrefix(px.URL, "http://") + "/conda"

	for _, m := range condaModes {
		recs := condaInstall(t, channel, "pyapp", "linux-64", m.mode)
		if got := files(recs); got != "pyapp-1.0-py_0.conda libdep-1.1-0.conda" {
			t.Errorf("%s: resolved %s", m.name, got)
		}
	}
	if n := up.Hits("/noarch/libdep-1.1-0.conda"); n != 1 {
		t.Errorf("libdep fetched upstream %d times, want 1", n)
	}
	// A .tar.bz2 package, found in repodata.json.
	if recs := condaInstall(t, channel, "libdep ==1.0", "linux-64", condaclient.Plain); files(recs) != "libdep-1.0-0.tar.bz2" {
		t.Errorf("libdep 1.0: %s", files(recs))
	}

	up.Corrupt("linux-64", "tool-2.0-h1234_0.conda", true)
	c := &condaclient.Client{Channel: channel}
	if _, err := c.Install("tool", "linux-64", condaclient.Sharded); err == nil {
		t.Error("a tampered package installed")
	}
	up.Corrupt("linux-64", "tool-2.0-h1234_0.conda", false)

	// Upstream down, a second proxy on the same bucket.
	up.Stop()
	px2 := startProxy(t, env)
	channel2 := "http://dev:" + e2eRead + "@" + strings.TrimPrefix(px2.URL, "http://") + "/conda"
	for _, m := range condaModes {
		if recs := condaInstall(t, channel2, "pyapp", "linux-64", m.mode); len(recs) != 2 {
			t.Errorf("%s with the upstream down: %s", m.name, files(recs))
		}
	}
	if _, err := (&condaclient.Client{Channel: channel2}).Install("tool", "linux-64", condaclient.Plain); err == nil {
		t.Error("the tampered package was stored: it installs with the upstream down")
	}

	// Hosted: an upload to one replica is in the other's repodata within a
	// second, though the other has read (and keeps) the channel's empty
	// repodata just before.
	private := "http://dev:" + e2eRead + "@" + strings.TrimPrefix(px2.URL, "http://") + "/private"
	if recs, err := (&condaclient.Client{Channel: private}).Records("noarch", condaclient.Plain); err != nil || len(recs) != 0 {
		t.Fatalf("the hosted channel before any upload: %v %v", recs, err)
	}
	pkg := fakeconda.Package{Name: "inhouse", Version: "0.3", Build: "0", Subdir: "noarch", Depends: []string{"libdep >=1.0"}, Time: time.Now()}
	body := fakeconda.Build(pkg)
	put := func(token string) int {
		req, _ := http.NewRequest(http.MethodPut, px.URL+"/private/noarch/"+pkg.Filename(), bytes.NewReader(body))
		req.SetBasicAuth("ci", token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := put(e2eRead); code != http.StatusForbidden {
		t.Errorf("upload with a read token: %d, want 403", code)
	}
	start := time.Now()
	if code := put(e2eWrite); code != http.StatusCreated {
		t.Fatalf("upload: %d", code)
	}
	for {
		recs, err := (&condaclient.Client{Channel: private}).Records("noarch", condaclient.Plain)
		if err == nil && len(recs) == 1 && recs[0].File == pkg.Filename() {
			break
		}
		if time.Since(start) > time.Second {
			t.Fatalf("the upload is not in the other replica's repodata after 1 s: %v %v", recs, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	recs, err := (&condaclient.Client{Channel: private}).Records("noarch", condaclient.Plain)
	if err != nil || len(recs) != 1 {
		t.Fatalf("hosted repodata: %v %v", recs, err)
	}
	if _, err := (&condaclient.Client{Channel: private}).Download(recs[0]); err != nil {
		t.Errorf("downloading the uploaded package: %v", err)
	}
	if code := put(e2eWrite); code/100 != 2 {
		t.Errorf("the same upload again: %d, want success", code)
	}
}
