package npm_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/fakenpm"
	"github.com/mirror-proxy/mirror-proxy/internal/hostile"
	"github.com/mirror-proxy/mirror-proxy/mirror/mirrortest"
	"github.com/mirror-proxy/mirror-proxy/proxy"
	"github.com/mirror-proxy/mirror-proxy/storage"
	"github.com/mirror-proxy/mirror-proxy/storage/local"
)

const writeToken = "npm-write-token-0123456789"

func hostedEnv(t *testing.T) (string, *local.Store) {
	up := fakenpm.New()
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(up.Stop)
	st, _ := local.New(t.TempDir())
	sum := sha256.Sum256([]byte(writeToken))
	srv := proxy.New(proxy.Options{Store: st, MetaPrefix: "mirror-meta", DistPrefix: "mirror-dist",
		Mirrors:         []proxy.Mirror{{Name: "npm", Type: "npm", URL: up.URL(), TTL: time.Minute, NotFoundTTL: time.Second, Hosted: true, Public: true}},
		Tokens:          []proxy.Token{{Name: "ci", SHA256: sum, Read: true, Write: true}},
		UpstreamTimeout: 5 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), StdHTTP: mirrortest.StdHTTP()})
	hsURL := mirrortest.ServeProxy(t, srv)
	return hsURL + "/npm", st
}

// tgzOf is a package tarball with a payload of n random bytes.
func tgzOf(t *testing.T, n int) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	pad := make([]byte, n)
	rand.Read(pad)
	for _, f := range []struct {
		name string
		body []byte
	}{{"package/package.json", []byte(`{"name":"@acme/big","version":"1.0.0"}`)}, {"package/blob.bin", pad}} {
		tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), Typeflag: tar.TypeReg})
		tw.Write(f.body)
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func publishDoc(name, version string, tgz []byte, integrity string) []byte {
	if integrity == "" {
		s := sha512.Sum512(tgz)
		integrity = "sha512-" + base64.StdEncoding.EncodeToString(s[:])
	}
	s1 := sha1.Sum(tgz)
	doc := map[string]any{"_id": name, "name": name, "dist-tags": map[string]string{"latest": version},
		"versions": map[string]any{version: map[string]any{"name": name, "version": version,
			"dist": map[string]any{"integrity": integrity, "shasum": hex.EncodeToString(s1[:]), "tarball": "http://x/" + name + "/-/x.tgz"}}},
		"_attachments": map[string]any{name + "-" + version + ".tgz": map[string]any{"content_type": "application/octet-stream",
			"data": base64.StdEncoding.EncodeToString(tgz), "length": len(tgz)}}}
	b, _ := json.Marshal(doc)
	return b
}

func put(t *testing.T, url string, body []byte) (int, string) {
	req, _ := http.NewRequest(http.MethodPut, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+writeToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func artifactKeys(st storage.Store) []string {
	var keys []string
	_ = st.List(context.Background(), "artifact/", func(i storage.Info) error { keys = append(keys, i.Key); return nil })
	return keys
}

// A 1 MB tarball (its base64 far above the in-memory limit for strings)
// is published, served byte for byte, with the published integrity.
func TestPublishLargeTarball(t *testing.T) {
	base, _ := hostedEnv(t)
	tgz := tgzOf(t, 1<<20)
	if code, body := put(t, base+"/@acme%2fbig", publishDoc("@acme/big", "1.0.0", tgz, "")); code != 201 {
		t.Fatalf("publish: %d %s", code, body)
	}
	resp, body := get(t, base+"/@acme%2fbig", "Accept", "application/vnd.npm.install-v1+json")
	var p packument
	if resp.StatusCode != 200 || json.Unmarshal(body, &p) != nil {
		t.Fatalf("packument: %d %s", resp.StatusCode, body)
	}
	d := p.Versions["1.0.0"].Dist
	s := sha512.Sum512(tgz)
	if d.Integrity != "sha512-"+base64.StdEncoding.EncodeToString(s[:]) || d.Tarball != base+"/@acme/big/-/big-1.0.0.tgz" {
		t.Errorf("dist: %+v", d)
	}
	resp, got := get(t, d.Tarball)
	if resp.StatusCode != 200 || !bytes.Equal(got, tgz) {
		t.Errorf("tarball: %d, %d bytes of %d", resp.StatusCode, len(got), len(tgz))
	}
}

// Bad publishes are 400s that name the problem and store nothing.
func TestBadPublishesStoreNothing(t *testing.T) {
	base, st := hostedEnv(t)
	tgz := tgzOf(t, 100)
	for _, c := range []struct {
		what, url string
		body      []byte
		msg       string
	}{
		{"integrity mismatch", "/@acme%2fbig", publishDoc("@acme/big", "1.0.0", tgz, "sha512-"+base64.StdEncoding.EncodeToString(make([]byte, 64))), "does not match"},
		{"name mismatch", "/@acme%2fother", publishDoc("@acme/big", "1.0.0", tgz, ""), "the URL names"},
		{"not JSON", "/@acme%2fbig", []byte("{nope"), "not a JSON packument"},
		{"not a tarball", "/@acme%2fbig", publishDoc("@acme/big", "1.0.0", []byte("plain text"), ""), "not a gzip tar"},
	} {
		code, body := put(t, base+c.url, c.body)
		if code != 400 || !strings.Contains(body, c.msg) {
			t.Errorf("%s: %d %s; want 400 with %q", c.what, code, body, c.msg)
		}
	}
	if keys := artifactKeys(st); len(keys) != 0 {
		t.Errorf("bad publishes stored %v", keys)
	}
}

func del(t *testing.T, url string) int {
	req, _ := http.NewRequest(http.MethodDelete, url, nil)
	req.Header.Set("Authorization", "Bearer "+writeToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// The tarball a packument names, and whether its bytes match its
// integrity.
func servedMatches(t *testing.T, base, name, version string) (bool, []byte) {
	t.Helper()
	resp, body := get(t, base+"/"+name)
	var p packument
	if resp.StatusCode != 200 || json.Unmarshal(body, &p) != nil {
		t.Fatalf("packument: %d %s", resp.StatusCode, body)
	}
	d := p.Versions[version].Dist
	resp, tgz := get(t, d.Tarball)
	s := sha512.Sum512(tgz)
	return resp.StatusCode == 200 && d.Integrity == "sha512-"+base64.StdEncoding.EncodeToString(s[:]), tgz
}

// A published version is never published again with other bytes, not
// even after npm unpublish (a tombstone, as npmjs.com keeps); the same
// tarball again while it is live succeeds (a retry after an ambiguous
// failure).
func TestVersionsAreImmutable(t *testing.T) {
	base, _ := hostedEnv(t)
	a, b := tgzOf(t, 100), tgzOf(t, 100)
	if code, body := put(t, base+"/@acme%2fbig", publishDoc("@acme/big", "1.0.0", a, "")); code != 201 {
		t.Fatalf("publish: %d %s", code, body)
	}
	if code, body := put(t, base+"/@acme%2fbig", publishDoc("@acme/big", "1.0.0", a, "")); code/100 != 2 {
		t.Errorf("the same tarball again: %d %s, want success", code, body)
	}
	if code, body := put(t, base+"/@acme%2fbig", publishDoc("@acme/big", "1.0.0", b, "")); code != 403 || !strings.Contains(body, "previously published") {
		t.Errorf("other bytes: %d %s, want 403", code, body)
	}
	if ok, _ := servedMatches(t, base, "@acme%2fbig", "1.0.0"); !ok {
		t.Error("after the refused publish, 1.0.0's tarball does not match its integrity")
	}
	// npm unpublish @acme/big@1.0.0 (the packument without it), then both
	// tarballs again.
	if code, body := put(t, base+"/@acme%2fbig/-rev/1", []byte(`{"name":"@acme/big","versions":{}}`)); code != 200 {
		t.Fatalf("unpublish: %d %s", code, body)
	}
	for _, tgz := range [][]byte{a, b} {
		if code, body := put(t, base+"/@acme%2fbig", publishDoc("@acme/big", "1.0.0", tgz, "")); code != 403 {
			t.Errorf("republish after unpublish: %d %s, want 403", code, body)
		}
	}
	// The unpublished tarball stays what it was (lock files may name it).
	resp, got := get(t, base+"/@acme/big/-/big-1.0.0.tgz")
	if resp.StatusCode != 200 || !bytes.Equal(got, a) {
		t.Errorf("unpublished tarball: %d, %d bytes, want the first publish's", resp.StatusCode, len(got))
	}
}

// 30 racing publishes of one version with other bytes each: exactly one
// wins, the others get npm's 403, and the index's integrity is that of the
// bytes stored under it.
func TestRacingPublishesOneWins(t *testing.T) {
	base, _ := hostedEnv(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	tgzs := make([][]byte, 30)
	for i := range tgzs {
		tgzs[i] = tgzOf(t, 100)
	}
	for i := range tgzs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, _ := put(t, base+"/@acme%2fbig", publishDoc("@acme/big", "1.0.0", tgzs[i], ""))
			mu.Lock()
			codes[code]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if codes[201] != 1 || codes[403] != 29 {
		t.Errorf("status codes %v, want one 201 and 29 403", codes)
	}
	if ok, _ := servedMatches(t, base, "@acme%2fbig", "1.0.0"); !ok {
		t.Error("the tarball served does not match the index's integrity")
	}
}

// What npm's registry refuses is refused: a manifest whose name or
// version is not the URL's, names npm refuses for new packages, versions
// that are not semver.
func TestPublishValidatesAsTheRegistry(t *testing.T) {
	base, st := hostedEnv(t)
	tgz := tgzOf(t, 100)
	withManifest := func(name, version, mName, mVersion string) []byte {
		var doc map[string]any
		json.Unmarshal(publishDoc(name, version, tgz, ""), &doc)
		m := doc["versions"].(map[string]any)[version].(map[string]any)
		m["name"], m["version"] = mName, mVersion
		b, _ := json.Marshal(doc)
		return b
	}
	for _, c := range []struct {
		what, url string
		body      []byte
	}{
		{"manifest of another package", "/@acme%2fy", withManifest("@acme/y", "1.0.0", "react", "9.9.9")},
		{"manifest of another version", "/@acme%2fy", withManifest("@acme/y", "1.0.0", "@acme/y", "9.9.9")},
		{"node_modules", "/node_modules", publishDoc("node_modules", "1.0.0", tgz, "")},
		{"favicon.ico", "/favicon.ico", publishDoc("favicon.ico", "1.0.0", tgz, "")},
		{"upper case", "/MyPkg", publishDoc("MyPkg", "1.0.0", tgz, "")},
		{"core module", "/http", publishDoc("http", "1.0.0", tgz, "")},
		{"special characters", "/a~b", publishDoc("a~b", "1.0.0", tgz, "")},
		{"not semver", "/@acme%2fy", publishDoc("@acme/y", "1.0", tgz, "")},
		{"leading v", "/@acme%2fy", publishDoc("@acme/y", "v1.0.0", tgz, "")},
	} {
		if code, body := put(t, base+c.url, c.body); code != 400 {
			t.Errorf("%s: %d %s, want 400", c.what, code, body)
		}
	}
	if keys := artifactKeys(st); len(keys) != 0 {
		t.Errorf("refused publishes stored %v", keys)
	}
}

// A README over 64 KiB (longer than the strings decoded in memory) is
// kept whole, not replaced by a placeholder; a string that looks like a
// placeholder is the client's own.
func TestLongManifestStringsAreKept(t *testing.T) {
	base, _ := hostedEnv(t)
	tgz := tgzOf(t, 100)
	readme := strings.Repeat("All about it. ", 10000)
	var doc map[string]any
	json.Unmarshal(publishDoc("@acme/doc", "1.0.0", tgz, ""), &doc)
	m := doc["versions"].(map[string]any)["1.0.0"].(map[string]any)
	m["readme"], m["description"] = readme, "\x00long:0"
	body, _ := json.Marshal(doc)
	if code, b := put(t, base+"/@acme%2fdoc", body); code != 201 {
		t.Fatalf("publish: %d %s", code, b)
	}
	_, b := get(t, base+"/@acme%2fdoc")
	var p struct {
		Versions map[string]struct{ Readme, Description string }
	}
	json.Unmarshal(b, &p)
	if v := p.Versions["1.0.0"]; v.Readme != readme || v.Description != "\x00long:0" {
		t.Errorf("readme %d bytes (want %d), description %q", len(v.Readme), len(readme), v.Description)
	}
}

// An uploaded tarball that decompresses to 1 GiB (a few MB sent) is
// refused as a bomb once it passes the unpack bound, quickly.
func TestPublishedTarballBombIsRefused(t *testing.T) {
	base, st := hostedEnv(t)
	bomb := hostile.TarGzBomb("package/blob.bin", 1024, "package/package.json", `{"name":"@acme/bomb","version":"1.0.0"}`)
	start := time.Now()
	code, body := put(t, base+"/@acme%2fbomb", publishDoc("@acme/bomb", "1.0.0", bomb, ""))
	if code != 400 || !strings.Contains(body, "bomb") {
		t.Errorf("a %d KB tarball of 1 GiB: %d %s, want 400", len(bomb)>>10, code, body)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("refusing it took %v", d)
	}
	if keys := artifactKeys(st); len(keys) != 0 {
		t.Errorf("stored %v", keys)
	}
}
