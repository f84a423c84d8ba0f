package servertest_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	neturl "net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/coord"
	"github.com/mirror-proxy/mirror-proxy/internal/fakepackagist"
	"github.com/mirror-proxy/mirror-proxy/internal/fakepypi"
	"github.com/mirror-proxy/mirror-proxy/mirror/composer"
	"github.com/mirror-proxy/mirror-proxy/mirror/mirrortest"
	"github.com/mirror-proxy/mirror-proxy/proxy"
	"github.com/mirror-proxy/mirror-proxy/storage"
	"github.com/mirror-proxy/mirror-proxy/storage/crypt"
	"github.com/mirror-proxy/mirror-proxy/storage/local"
)

const (
	writeSecret = "write-token-0123456789"
	readSecret  = "read-token-0123456789"
)

func hostedTokens(t *testing.T) []proxy.Token {
	return []proxy.Token{token(t, "ci", writeSecret, true, true), token(t, "reader", readSecret, true, false)}
}

// zipWith is a zip archive of the given files.
func zipWith(t testing.TB, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, body := range files {
		w, _ := zw.Create(name)
		w.Write([]byte(body))
	}
	zw.Close()
	return buf.Bytes()
}

func composerZip(t testing.TB, name, extra string) []byte {
	return zipWith(t, map[string]string{
		"lib/composer.json": `{"name":"` + name + `","description":"private","require":{"php":">=7.0"}` + extra + `}`,
		"lib/src/Lib.php":   "<?php\nclass Lib {}\n",
	})
}

// multipartBody builds a multipart/form-data body: fields, then the file.
func multipartBody(fields [][2]string, fileField, filename string, file []byte) (string, *bytes.Buffer) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, f := range fields {
		mw.WriteField(f[0], f[1])
	}
	if fileField != "" {
		w, _ := mw.CreateFormFile(fileField, filename)
		w.Write(file)
	}
	mw.Close()
	return mw.FormDataContentType(), &buf
}

func send(t testing.TB, method, url, secret, ctype string, body io.Reader) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, body)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if secret != "" {
		req.SetBasicAuth("__token__", secret)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func publishComposer(t testing.TB, base, secret, name, version string, zipBytes []byte) (*http.Response, string) {
	ct, body := multipartBody(nil, "package", "package.zip", zipBytes)
	return send(t, http.MethodPut, base+"/packages/upload/"+name+"/"+version, secret, ct, body)
}

func artifactKeys(t testing.TB, st storage.Store) []string {
	var keys []string
	_ = st.List(context.Background(), "artifact/", func(i storage.Info) error { keys = append(keys, i.Key); return nil })
	return keys
}

func hostedComposerEnv(t *testing.T, mod func(*proxy.Options)) *env {
	return newEnvWith(t, time.Minute, func(o *proxy.Options) {
		o.Mirrors[0].Hosted = true
		o.Tokens = hostedTokens(t)
		if mod != nil {
			mod(o)
		}
	})
}

func authGet(t testing.TB, url string) (*http.Response, string) {
	return send(t, http.MethodGet, url, readSecret, "", nil)
}

// A published Composer package is served from the mirror's own URLs, its
// zip verified by its sha1; a version is published once; DELETE takes it
// out of the index; the upstream never supplies a version of the name,
// even a higher one published later (dependency confusion).
func TestComposerPublishServesFromTheSameURLs(t *testing.T) {
	e := hostedComposerEnv(t, nil)
	z := composerZip(t, "acme/private-lib", `,"extra":{"push":{"password":"not-for-clients"}}`)
	resp, body := publishComposer(t, e.url, writeSecret, "acme/private-lib", "1.0.0", z)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("publish: %d %s", resp.StatusCode, body)
	}
	sum := sha1.Sum(z)
	if !strings.Contains(body, hex.EncodeToString(sum[:])) || !strings.Contains(body, `"version_normalized":"1.0.0.0"`) {
		t.Errorf("publish answer: %s", body)
	}
	// Packeton's other spelling: POST under /api/.
	ct, mb := multipartBody([][2]string{{"src-type", "git"}, {"src-url", "https://git.example.com/lib.git"}, {"src-ref", "abc123"}},
		"package", "p.zip", composerZip(t, "acme/private-lib", `,"version":"7.7.7"`))
	if resp, body := send(t, http.MethodPost, e.url+"/api/packages/upload/acme/private-lib/1.1.0", writeSecret, ct, mb); resp.StatusCode != 201 {
		t.Fatalf("publish 1.1.0: %d %s", resp.StatusCode, body)
	}
	// The upstream now publishes the same name, higher.
	e.up.Publish("acme/private-lib", fakepackagist.Version{Version: "9.0.0"})
	resp, p2 := authGet(t, e.url+"/p2/acme/private-lib.json")
	if resp.StatusCode != 200 {
		t.Fatalf("p2: %d %s", resp.StatusCode, p2)
	}
	vs, err := composer.Expand([]byte(p2), "acme/private-lib")
	if err != nil || len(vs) != 2 {
		t.Fatalf("p2 versions: %v %v\n%s", len(vs), err, p2)
	}
	if !strings.Contains(p2, `"source":{"reference":"abc123","type":"git","url":"https://git.example.com/lib.git"}`) {
		t.Errorf("p2 lacks the source given with src-*: %s", p2)
	}
	if strings.Contains(p2, "9.0.0") || strings.Contains(p2, "not-for-clients") || strings.Contains(p2, "7.7.7") {
		t.Errorf("p2 leaks the upstream's version, extra.push or the file's version: %s", p2)
	}
	d, ok := composer.FindDist(vs, "1.0.0.0", hex.EncodeToString(sum[:]))
	if !ok || d.Shasum != hex.EncodeToString(sum[:]) {
		t.Fatalf("dist of 1.0.0: %+v", d)
	}
	base := strings.TrimSuffix(e.url, "/packagist")
	resp, zbody := authGet(t, base+d.URL)
	if resp.StatusCode != 200 || zbody != string(z) {
		t.Errorf("dist download: %d, %d bytes", resp.StatusCode, len(zbody))
	}
	// A mirrored package still comes from the upstream.
	if resp, body := authGet(t, e.url+"/p2/acme/foo.json"); resp.StatusCode != 200 || !strings.Contains(body, "acme/foo") {
		t.Errorf("mirrored package: %d %s", resp.StatusCode, body)
	}
	// Published once.
	before := artifactKeys(t, e.store)
	if resp, body := publishComposer(t, e.url, writeSecret, "acme/private-lib", "1.0.0.0", composerZip(t, "acme/private-lib", `,"description":"other"`)); resp.StatusCode != http.StatusConflict || !strings.Contains(body, "published already") {
		t.Errorf("re-publish: %d %s", resp.StatusCode, body)
	}
	if after := artifactKeys(t, e.store); len(after) != len(before) {
		t.Errorf("a refused re-publish stored something: %v -> %v", before, after)
	}
	resp, list := authGet(t, e.url+"/packages/list.json")
	if resp.StatusCode != 200 || list != `{"packageNames":["acme/private-lib"]}`+"\n" {
		t.Errorf("list.json: %d %q", resp.StatusCode, list)
	}
	resp, body = send(t, http.MethodDelete, e.url+"/packages/upload/acme/private-lib/1.0.0", writeSecret, "", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("delete: %d %s", resp.StatusCode, body)
	}
	_, p2 = authGet(t, e.url+"/p2/acme/private-lib.json")
	if strings.Contains(p2, `"1.0.0.0"`) || !strings.Contains(p2, `"1.1.0.0"`) || strings.Contains(p2, "9.0.0") {
		t.Errorf("p2 after delete: %s", p2)
	}
	// The deleted version's zip stays downloadable (lock files name it).
	if resp, _ := authGet(t, base+d.URL); resp.StatusCode != 200 {
		t.Errorf("zip of a deleted version: %d", resp.StatusCode)
	}
	// Another replica (a restart: empty memory) serves the same from storage.
	e.restart(t)
	if _, p2b := authGet(t, e.url+"/p2/acme/private-lib.json"); p2b != p2 {
		t.Errorf("after a restart: %s", p2b)
	}
}

// Each bad upload is a 400 (413 for size) naming the problem, and nothing
// is stored.
func TestComposerBadUploadsStoreNothing(t *testing.T) {
	e := hostedComposerEnv(t, func(o *proxy.Options) { o.UploadMaxBytes = 64 << 10 })
	good := composerZip(t, "acme/lib", "")
	big := zipWith(t, map[string]string{"composer.json": `{"name":"acme/lib"}`, "blob": strings.Repeat(string(rune('a')), 1) + randomText(300<<10)})
	cases := []struct {
		what, name, version string
		ctype               string
		body                io.Reader
		status              int
		msg                 string
	}{
		{"corrupt zip", "acme/lib", "1.0.0", "", nil, 400, "not a valid zip"},
		{"no composer.json", "acme/lib", "1.0.0", "", nil, 400, "no composer.json"},
		{"name mismatch", "acme/other", "1.0.0", "", nil, 400, "must be the same"},
		{"bad version", "acme/lib", "not.a.version!", "", nil, 400, "invalid version"},
		{"no package part", "acme/lib", "1.0.0", "", nil, 400, "file part"},
		{"not multipart", "acme/lib", "1.0.0", "application/zip", bytes.NewReader(good), 400, "multipart/form-data"},
		{"too large", "acme/lib", "1.0.0", "", nil, 413, "UPLOAD_MAX_BYTES"},
		{"invalid name", "Acme/Lib", "1.0.0", "", nil, 400, "not a valid lowercase"},
	}
	for _, c := range cases {
		ctype, body := c.ctype, c.body
		if body == nil {
			var file []byte
			field := "package"
			switch c.what {
			case "corrupt zip":
				file = []byte("PK\x03\x04 this is no zip")
			case "no composer.json":
				file = zipWith(t, map[string]string{"README.md": "hi"})
			case "no package part":
				field, file = "other", good
			case "too large":
				file = big
			default:
				file = good
			}
			var buf *bytes.Buffer
			ctype, buf = multipartBody([][2]string{{"src-type", "git"}}, field, "p.zip", file)
			body = buf
		}
		resp, msg := send(t, http.MethodPut, e.url+"/packages/upload/"+c.name+"/"+c.version, writeSecret, ctype, body)
		if resp.StatusCode != c.status || !strings.Contains(msg, c.msg) {
			t.Errorf("%s: %d %s; want %d with %q", c.what, resp.StatusCode, msg, c.status, c.msg)
		}
	}
	if keys := artifactKeys(t, e.store); len(keys) != 0 {
		t.Errorf("bad uploads stored %v", keys)
	}
}

func randomText(n int) string {
	b := make([]byte, n)
	x := uint32(12345)
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte('a' + x>>24%26)
	}
	return string(b)
}

// Uploads need a write token: none configured is a 403 saying how to
// configure one; no credentials a 401 with the Basic challenge; a
// read-only token a 403.
func TestUploadsNeedAWriteToken(t *testing.T) {
	z := composerZip(t, "acme/lib", "")
	open := newEnvWith(t, time.Minute, func(o *proxy.Options) { o.Mirrors[0].Hosted = true })
	if resp, body := publishComposer(t, open.url, "", "acme/lib", "1.0.0", z); resp.StatusCode != 403 || !strings.Contains(body, "AUTH_TOKENS") {
		t.Errorf("no tokens configured: %d %s", resp.StatusCode, body)
	}
	e := hostedComposerEnv(t, nil)
	if resp, _ := publishComposer(t, e.url, "", "acme/lib", "1.0.0", z); resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("no credentials: %d", resp.StatusCode)
	}
	if resp, body := publishComposer(t, e.url, readSecret, "acme/lib", "1.0.0", z); resp.StatusCode != 403 || !strings.Contains(body, "write scope") {
		t.Errorf("read-only token: %d %s", resp.StatusCode, body)
	}
	if keys := artifactKeys(t, e.store); len(keys) != 0 {
		t.Errorf("refused uploads stored %v", keys)
	}
}

// A mirror without upstream is a private repository: its packages.json
// lists what is published, and any other name is a 404.
func TestHostedOnlyComposerRepository(t *testing.T) {
	st, _ := local.New(t.TempDir())
	srv := newServer(proxy.Options{Store: st, MetaPrefix: "mirror-meta", DistPrefix: "mirror-dist",
		Mirrors: []proxy.Mirror{{Name: "private", Type: "composer", Hosted: true, TTL: time.Minute}},
		Tokens:  hostedTokens(t), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	hsURL := mirrortest.ServeProxy(t, srv)
	base := hsURL + "/private"
	if resp, body := publishComposer(t, base, writeSecret, "acme/lib", "2.0.0-beta1", composerZip(t, "acme/lib", "")); resp.StatusCode != 201 {
		t.Fatalf("publish: %d %s", resp.StatusCode, body)
	}
	resp, root := authGet(t, base+"/packages.json")
	var r map[string]any
	if resp.StatusCode != 200 || json.Unmarshal([]byte(root), &r) != nil || r["metadata-url"] != "/private/p2/%package%.json" ||
		!strings.Contains(root, `"available-packages":["acme/lib"]`) {
		t.Errorf("root: %d %s", resp.StatusCode, root)
	}
	if resp, body := authGet(t, base+"/p2/acme/unknown.json"); resp.StatusCode != 404 {
		t.Errorf("unknown name: %d %s", resp.StatusCode, body)
	}
	if resp, body := authGet(t, base+"/p2/acme/lib.json"); resp.StatusCode != 200 || !strings.Contains(body, "2.0.0.0-beta1") {
		t.Errorf("p2: %d %s", resp.StatusCode, body)
	}
}

// A PyPI mirror without upstream lists its published projects and
// answers 404 for any other.
func TestHostedOnlyPyPIRepository(t *testing.T) {
	st, _ := local.New(t.TempDir())
	srv := newServer(proxy.Options{Store: st, MetaPrefix: "mirror-meta", DistPrefix: "mirror-dist",
		Mirrors: []proxy.Mirror{{Name: "private", Type: "pypi", Hosted: true, TTL: time.Minute}},
		Tokens:  hostedTokens(t), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	hsURL := mirrortest.ServeProxy(t, srv)
	base := hsURL + "/private"
	filename, whl := wheel(t, "Private.Pkg", "1.0", ">=3.8")
	ct, body := twineForm("Private.Pkg", "1.0", filename, whl)
	if resp, msg := send(t, http.MethodPost, base+"/legacy", writeSecret, ct, body); resp.StatusCode != 200 {
		t.Fatalf("upload: %d %s", resp.StatusCode, msg)
	}
	if resp, root := authGet(t, base+"/simple/"); resp.StatusCode != 200 || !strings.Contains(root, `href="private-pkg/"`) {
		t.Errorf("root: %d %s", resp.StatusCode, root)
	}
	if resp, page := authGet(t, base+"/simple/private-pkg/"); resp.StatusCode != 200 || !strings.Contains(page, filename) {
		t.Errorf("page: %d %s", resp.StatusCode, page)
	}
	if resp, body := authGet(t, base+"/simple/requests/"); resp.StatusCode != 404 {
		t.Errorf("unknown project: %d %s", resp.StatusCode, body)
	}
}

// wheel builds a wheel of name-version with its METADATA.
func wheel(t testing.TB, name, version, requiresPython string) (filename string, b []byte) {
	dist := strings.ReplaceAll(name, "-", "_")
	meta := "Metadata-Version: 2.1\nName: " + name + "\nVersion: " + version + "\nRequires-Python: " + requiresPython + "\n\nA package\n"
	b = zipWith(t, map[string]string{
		dist + "/__init__.py":                        "X = 1\n",
		dist + "-" + version + ".dist-info/METADATA": meta,
		dist + "-" + version + ".dist-info/WHEEL":    "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
		dist + "-" + version + ".dist-info/RECORD":   "",
	})
	return dist + "-" + version + "-py3-none-any.whl", b
}

func twineForm(name, version, filename string, file []byte, override ...string) (string, *bytes.Buffer) {
	sum := sha256.Sum256(file)
	fields := map[string]string{":action": "file_upload", "protocol_version": "1", "name": name, "version": version,
		"filetype": "bdist_wheel", "pyversion": "py3", "metadata_version": "2.1", "sha256_digest": hex.EncodeToString(sum[:])}
	for i := 0; i+1 < len(override); i += 2 {
		fields[override[i]] = override[i+1]
	}
	var list [][2]string
	for _, k := range []string{":action", "protocol_version", "name", "version", "filetype", "pyversion", "metadata_version", "sha256_digest"} {
		list = append(list, [2]string{k, fields[k]})
	}
	return multipartBody(list, "content", filename, file)
}

func hostedPyPIEnv(t *testing.T) (base string, st *local.Store, up *fakepypi.Server) {
	up = fakepypi.New(false)
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(up.Stop)
	st, _ = local.New(t.TempDir())
	srv := newServer(proxy.Options{Store: st, MetaPrefix: "mirror-meta", DistPrefix: "mirror-dist",
		Mirrors: []proxy.Mirror{{Name: "pypi", Type: "pypi", URL: up.IndexURL(), Hosted: true, TTL: time.Minute, NotFoundTTL: time.Second}},
		Tokens:  hostedTokens(t), UpstreamTimeout: 5 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	hsURL := mirrortest.ServeProxy(t, srv)
	return hsURL + "/pypi", st, up
}

// twine's legacy upload: the file appears in both page formats with its
// sha256, size, upload time, requires-python and PEP 658 metadata; a
// duplicate is a 400 "File already exists"; the upstream's project of the
// same name is never merged in.
func TestPyPILegacyUpload(t *testing.T) {
	base, st, up := hostedPyPIEnv(t)
	filename, whl := wheel(t, "dep-pkg", "0.5", ">=3.8")
	ct, body := twineForm("dep_pkg", "0.5", filename, whl)
	resp, msg := send(t, http.MethodPost, base+"/legacy/", writeSecret, ct, body)
	if resp.StatusCode != 200 {
		t.Fatalf("upload: %d %s", resp.StatusCode, msg)
	}
	up.Publish("dep-pkg", fakepypi.Release{Version: "99.0"})
	_, page := send(t, http.MethodGet, base+"/simple/dep-pkg/", readSecret, "", nil)
	req, _ := http.NewRequest("GET", base+"/simple/dep-pkg/", nil)
	req.Header.Set("Accept", "application/vnd.pypi.simple.v1+json")
	req.SetBasicAuth("x", readSecret)
	jr, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	jb, _ := io.ReadAll(jr.Body)
	jr.Body.Close()
	var doc struct {
		Files []struct {
			Filename     string            `json:"filename"`
			URL          string            `json:"url"`
			Hashes       map[string]string `json:"hashes"`
			Size         int64             `json:"size"`
			UploadTime   string            `json:"upload-time"`
			RequiresPy   string            `json:"requires-python"`
			CoreMetadata map[string]string `json:"core-metadata"`
		} `json:"files"`
	}
	if err := json.Unmarshal(jb, &doc); err != nil || len(doc.Files) != 1 {
		t.Fatalf("JSON page: %v %s", err, jb)
	}
	f := doc.Files[0]
	sum := sha256.Sum256(whl)
	if f.Filename != filename || f.Hashes["sha256"] != hex.EncodeToString(sum[:]) || f.Size != int64(len(whl)) ||
		f.UploadTime == "" || f.RequiresPy != ">=3.8" || f.CoreMetadata["sha256"] == "" {
		t.Errorf("file entry: %+v", f)
	}
	if strings.Contains(page, "99.0") || !strings.Contains(page, filename) {
		t.Errorf("HTML page: %s", page)
	}
	pageURL, _ := neturl.Parse(base + "/simple/dep-pkg/")
	rel, _ := neturl.Parse(f.URL)
	fileURL := pageURL.ResolveReference(rel).String()
	if resp, b := send(t, http.MethodGet, fileURL, readSecret, "", nil); resp.StatusCode != 200 || b != string(whl) {
		t.Errorf("file: %d", resp.StatusCode)
	}
	resp, meta := send(t, http.MethodGet, fileURL+".metadata", readSecret, "", nil)
	msum := sha256.Sum256([]byte(meta))
	if resp.StatusCode != 200 || hex.EncodeToString(msum[:]) != f.CoreMetadata["sha256"] || !strings.Contains(meta, "Requires-Python: >=3.8") {
		t.Errorf("metadata: %d %q", resp.StatusCode, meta)
	}
	// The same file again: a retry, answered as PyPI does (200), nothing
	// more stored.
	before := artifactKeys(t, st)
	ct, body = twineForm("dep-pkg", "0.5", filename, whl)
	if resp, msg := send(t, http.MethodPost, base+"/legacy/", writeSecret, ct, body); resp.StatusCode != 200 {
		t.Errorf("the same file again: %d %s, want 200", resp.StatusCode, msg)
	}
	if after := artifactKeys(t, st); len(after) != len(before) {
		t.Errorf("duplicate stored: %v -> %v", before, after)
	}
	// A mirrored project still comes from the upstream.
	if resp, b := send(t, http.MethodGet, base+"/simple/foo-bar/", readSecret, "", nil); resp.StatusCode != 200 || !strings.Contains(b, "Foo") && !strings.Contains(b, "foo") {
		t.Errorf("mirrored project: %d %s", resp.StatusCode, b)
	}
}

// Each bad twine upload is a 400 naming the problem; nothing is stored.
func TestPyPIBadUploadsStoreNothing(t *testing.T) {
	base, st, _ := hostedPyPIEnv(t)
	filename, whl := wheel(t, "private-pkg", "1.0", ">=3.8")
	cases := []struct {
		what string
		make func() (string, *bytes.Buffer)
		msg  string
	}{
		{"unknown action", func() (string, *bytes.Buffer) {
			return twineForm("private-pkg", "1.0", filename, whl, ":action", "submit")
		}, "unsupported :action"},
		{"digest mismatch", func() (string, *bytes.Buffer) {
			return twineForm("private-pkg", "1.0", filename, whl, "sha256_digest", strings.Repeat("0", 64))
		}, "does not match the uploaded bytes"},
		{"name mismatch", func() (string, *bytes.Buffer) { return twineForm("other-pkg", "1.0", filename, whl) }, "does not match the project"},
		{"version mismatch", func() (string, *bytes.Buffer) { return twineForm("private-pkg", "2.0", filename, whl) }, "does not match the project"},
		{"unparsable filename", func() (string, *bytes.Buffer) { return twineForm("private-pkg", "1.0", "private_pkg.whl", whl) }, "not a wheel file name"},
		{"corrupt wheel", func() (string, *bytes.Buffer) { return twineForm("private-pkg", "1.0", filename, []byte("PK junk")) }, "not a valid zip"},
	}
	for _, c := range cases {
		ct, body := c.make()
		resp, msg := send(t, http.MethodPost, base+"/legacy/", writeSecret, ct, body)
		if resp.StatusCode != 400 || !strings.Contains(msg, c.msg) {
			t.Errorf("%s: %d %s; want 400 with %q", c.what, resp.StatusCode, msg, c.msg)
		}
	}
	if keys := artifactKeys(t, st); len(keys) != 0 {
		t.Errorf("bad uploads stored %v", keys)
	}
}

// An upload cut off half-way stores nothing.
func TestCutOffUploadStoresNothing(t *testing.T) {
	e := hostedComposerEnv(t, nil)
	ct, body := multipartBody(nil, "package", "p.zip", composerZip(t, "acme/lib", `,"description":"`+randomText(200<<10)+`"`))
	u, _ := neturl.Parse(e.url)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	full := body.Bytes()
	fmt.Fprintf(conn, "PUT /packagist/packages/upload/acme/lib/1.0.0 HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nAuthorization: Bearer %s\r\n\r\n",
		u.Host, ct, len(full), writeSecret)
	conn.Write(full[:len(full)/2])
	time.Sleep(100 * time.Millisecond)
	conn.Close()
	time.Sleep(300 * time.Millisecond)
	if keys := artifactKeys(t, e.store); len(keys) != 0 {
		t.Errorf("a cut-off upload stored %v", keys)
	}
}

// An upload that keeps sending may take longer than the body deadline
// (which then bounds silence, not the whole transfer).
func TestSlowUploadThatKeepsSendingIsAccepted(t *testing.T) {
	e := hostedComposerEnv(t, func(o *proxy.Options) { o.BodyReadTimeout = 500 * time.Millisecond })
	ct, body := multipartBody(nil, "package", "p.zip", composerZip(t, "acme/lib", ""))
	full := body.Bytes()
	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < len(full); i += len(full)/8 + 1 {
			pw.Write(full[i:min(len(full), i+len(full)/8+1)])
			time.Sleep(200 * time.Millisecond) // 8 × 200 ms: well past the deadline in all
		}
		pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPut, e.url+"/packages/upload/acme/lib/1.0.0", pr)
	req.ContentLength = int64(len(full))
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Authorization", "Bearer "+writeSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("slow upload: %d %s", resp.StatusCode, b)
	}
}

// With Redis configured but down, a publish is refused with a 503 (the
// index lock cannot be taken), never half-done; reads go on.
func TestPublishWithRedisDownIs503(t *testing.T) {
	co, err := coord.NewCoordinator("redis://127.0.0.1:1/0", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { co.Close() })
	e := hostedComposerEnv(t, func(o *proxy.Options) { o.Coordinator = co })
	resp, body := publishComposer(t, e.url, writeSecret, "acme/lib", "1.0.0", composerZip(t, "acme/lib", ""))
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("publish with Redis down: %d %s", resp.StatusCode, body)
	}
	for _, k := range artifactKeys(t, e.store) {
		if strings.Contains(k, "/index/") || strings.HasSuffix(k, "names.json") {
			t.Errorf("an index was written without the lock: %s", k)
		}
	}
	if resp, body := authGet(t, e.url+"/p2/acme/foo.json"); resp.StatusCode != 200 {
		t.Errorf("reads with Redis down: %d %s", resp.StatusCode, body)
	}
}

// Publishing works on an encrypted store (STORAGE_ENCRYPTION): the index
// is updated with conditional writes over encrypted objects, a second
// version is added to it, the files read back whole, and nothing in the
// directory holds the plaintext.
func TestHostedPublishOnEncryptedStorage(t *testing.T) {
	dir := t.TempDir()
	raw, _ := local.New(dir)
	key := make([]byte, 32)
	rand.Read(key)
	lk, _ := crypt.NewLocalKey(key)
	srv := newServer(proxy.Options{Store: crypt.New(raw, lk), MetaPrefix: "mirror-meta", DistPrefix: "mirror-dist",
		Mirrors: []proxy.Mirror{{Name: "private", Type: "pypi", Hosted: true, TTL: time.Minute}},
		Tokens:  hostedTokens(t), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	base := mirrortest.ServeProxy(t, srv) + "/private"
	var wheels [][]byte
	for _, v := range []string{"1.0", "1.1"} {
		filename, whl := wheel(t, "Secret.Pkg", v, ">=3.8")
		wheels = append(wheels, whl)
		ct, body := twineForm("Secret.Pkg", v, filename, whl)
		if resp, msg := send(t, http.MethodPost, base+"/legacy", writeSecret, ct, body); resp.StatusCode != 200 {
			t.Fatalf("upload %s: %d %s", v, resp.StatusCode, msg)
		}
	}
	resp, page := authGet(t, base+"/simple/secret-pkg/")
	if resp.StatusCode != 200 || !strings.Contains(page, "Secret.Pkg-1.0-") || !strings.Contains(page, "Secret.Pkg-1.1-") {
		t.Fatalf("page after two versions: %d %s", resp.StatusCode, page)
	}
	hrefs := regexp.MustCompile(`href="([^"#]+)`).FindAllStringSubmatch(page, -1)
	got := 0
	for _, h := range hrefs {
		pageURL, _ := url.Parse(base + "/simple/secret-pkg/")
		ref, _ := url.Parse(h[1])
		resp, body := authGet(t, pageURL.ResolveReference(ref).String())
		for _, w := range wheels {
			if resp.StatusCode == 200 && body == string(w) {
				got++
			}
		}
	}
	if got != 2 {
		t.Errorf("%d of the 2 published wheels read back whole (links %v)", got, hrefs)
	}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(p)
		if bytes.Contains(b, []byte("Secret.Pkg")) { // in every wheel and index, in plaintext
			t.Errorf("%s holds plaintext", p)
		}
		return nil
	})
}
