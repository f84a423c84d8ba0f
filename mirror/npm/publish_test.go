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
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/fakenpm"
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
		UpstreamTimeout: 5 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { hs.Close(); srv.Close() })
	return hs.URL + "/npm", st
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
