package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/fakepypi"
	"github.com/mirror-proxy/mirror-proxy/internal/testenv"
)

// pip runs the machine's pip hermetically: no config, no cache, no retries.
func pip(t *testing.T, index string, args ...string) (string, error) {
	t.Helper()
	py, ok := testenv.LookPath("python3")
	if !ok {
		testenv.Missing(t, "python3 with pip", "apt-get install python3-pip")
	}
	base := []string{"-m", "pip"}
	cmd := exec.Command(py, append(base, args...)...)
	// pip options go after the subcommand.
	cmd.Args = append([]string{py, "-m", "pip", args[0], "--isolated", "--disable-pip-version-check", "--no-cache-dir",
		"--retries", "0", "--timeout", "20", "--index-url", index}, args[1:]...)
	cmd.Env = append(os.Environ(), "PIP_NO_INPUT=1")
	return output(t, cmd)
}

func mustPip(t *testing.T, index string, args ...string) string {
	t.Helper()
	out, err := pip(t, index, args...)
	if err != nil {
		t.Fatalf("pip %v: %v\n%s", args, err, tailLines(out, 40))
	}
	return out
}

// installed lists "name==version" of what pip put in dir.
func installed(t *testing.T, dir string) string {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".dist-info"); ok {
			out = append(out, n)
		}
	}
	return strings.Join(out, " ")
}

// resolveURL resolves a page's (relative) file URL as pip does.
func resolveURL(t *testing.T, base, ref string) string {
	t.Helper()
	b, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	r, err := url.Parse(ref)
	if err != nil {
		t.Fatal(err)
	}
	return b.ResolveReference(r).String()
}

func sha256hex(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func TestPyPIMirrorOnS3(t *testing.T) {
	testenv.Deadline(t, 5*time.Minute)
	if out, err := exec.Command("python3", "-m", "pip", "--version").CombinedOutput(); err != nil {
		testenv.Missing(t, "python3 -m pip", "apt-get install python3-pip: "+string(out))
	}
	s3 := testenv.StartS3(t)
	for _, mode := range []string{"json", "html", "json encrypted"} {
		t.Run(mode, func(t *testing.T) { testPyPI(t, s3, mode == "html", strings.HasSuffix(mode, "encrypted")) })
	}
}

// testPyPI is the pip e2e; encrypted runs it all with client-side
// encryption (STORAGE_ENCRYPTION, a local key): nothing a client sees
// changes.
func testPyPI(t *testing.T, s3 *testenv.S3, htmlOnly, encrypted bool) {
	bucket := s3.NewBucket(t)
	up := fakepypi.New(htmlOnly)
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	upAddr := up.Addr()
	keyFile := filepath.Join(t.TempDir(), "storage.key")
	os.WriteFile(keyFile, bytes.Repeat([]byte{7}, 32), 0o600)
	env := func() map[string]string {
		e := map[string]string{
			"STORAGE_SOURCE": "s3", "STORAGE_AWS_BUCKET": bucket, "STORAGE_AWS_ARGS": s3.ArgsJSON(),
			"MIRRORS":                   `[{"name":"pypi","type":"pypi","url":"` + up.IndexURL() + `","ttl":"1s","notFoundTtl":"30s"}]`,
			"MIRROR_METADATA_CACHE_DIR": t.TempDir(), "MIRROR_DIST_CACHE_DIR": t.TempDir(),
			"VERIFY_FAILURE_TTL": "1s",
		}
		if encrypted {
			e["STORAGE_ENCRYPTION"] = "key:" + keyFile
		}
		return e
	}
	top := t
	px := startProxy(t, env())
	index := px.URL + "/pypi/simple/"

	t.Run("1 cold then warm install", func(t *testing.T) {
		dir := t.TempDir()
		mustPip(t, index, "install", "--target", dir, "Foo.Bar")
		if got := installed(t, dir); got != "dep_pkg-1.0 foo_bar-1.0" {
			t.Fatalf("installed %q, want dep_pkg-1.0 foo_bar-1.0", got)
		}
		files := up.HitsPrefix("/files/")
		dir2 := t.TempDir()
		mustPip(t, index, "install", "--target", dir2, "Foo.Bar")
		if got := installed(t, dir2); got != "dep_pkg-1.0 foo_bar-1.0" {
			t.Fatalf("warm install: %q", got)
		}
		if n := up.HitsPrefix("/files/") - files; n != 0 {
			t.Errorf("the warm install made %d upstream file requests, want 0", n)
		}
		keys := strings.Join(s3.Keys(t, bucket), "\n")
		for _, want := range []string{"mirror-meta/pypi/simple/foo-bar.json", "mirror-dist/pypi/foo-bar/", "/foo_bar-1.0-py3-none-any.whl", "mirror-dist/pypi/dep-pkg/"} {
			if !strings.Contains(keys, want) {
				t.Errorf("no key containing %s:\n%s", want, keys)
			}
		}
	})

	t.Run("5 requires-python: a version for a newer Python is never downloaded", func(t *testing.T) {
		f := fakepypi.Filename("dep-pkg", "2.0")
		if n := up.Hits("/files/"+f) + up.Hits("/files/"+f+".metadata"); n != 0 {
			t.Errorf("dep-pkg 2.0 (Requires-Python >=3.99) was fetched %d times", n)
		}
	})

	t.Run("6 name variants redirect and install", func(t *testing.T) {
		for _, p := range []string{"simple/Foo.Bar/", "simple/foo_bar/", "simple/FOO--bar/", "simple/foo-bar", "simple"} {
			req, _ := http.NewRequest("GET", px.URL+"/pypi/"+p, nil)
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			loc := resp.Header.Get("Location")
			if resp.StatusCode != 301 || !(strings.HasSuffix(loc, "/pypi/simple/foo-bar/") || (p == "simple" && strings.HasSuffix(loc, "/pypi/simple/"))) {
				t.Errorf("GET /pypi/%s: %d Location %q, want 301 to the normalized URL", p, resp.StatusCode, loc)
			}
		}
		dir := t.TempDir()
		mustPip(t, index, "install", "--target", dir, "foo_bar")
		if got := installed(t, dir); !strings.Contains(got, "foo_bar-1.0") {
			t.Errorf("pip install foo_bar: %q", got)
		}
	})

	t.Run("4 yanked", func(t *testing.T) {
		dir := t.TempDir()
		mustPip(t, index, "install", "--target", dir, "yanky")
		if got := installed(t, dir); got != "yanky-0.9" {
			t.Errorf("unpinned install of a project whose newest version is yanked: %q, want yanky-0.9", got)
		}
		dir = t.TempDir()
		out := mustPip(t, index, "install", "--target", dir, "yanky==1.0")
		if got := installed(t, dir); got != "yanky-1.0" || !strings.Contains(out, "broken release") {
			t.Errorf("pinned install of a yanked version: %q\n%s", got, out)
		}
	})

	t.Run("7 PEP 658 metadata", func(t *testing.T) {
		code, hdr, body := get(t, index+"foo-bar/", "Accept", "application/vnd.pypi.simple.v1+json")
		if code != 200 || hdr.Get("Content-Type") != "application/vnd.pypi.simple.v1+json" {
			t.Fatalf("JSON page: %d %s", code, hdr.Get("Content-Type"))
		}
		var page struct {
			Meta  map[string]any `json:"meta"`
			Files []map[string]any
		}
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(body, []byte("dist-info-metadata")) {
			t.Errorf("JSON page carries dist-info-metadata (breaks pip 22.3-23.1)")
		}
		f := page.Files[0]
		cm, _ := f["core-metadata"].(map[string]any)
		wantMeta := up.Metadata(fakepypi.Filename("Foo.Bar", "1.0"))
		if cm == nil || cm["sha256"] != sha256hex(wantMeta) {
			t.Fatalf("core-metadata not carried: %v", f)
		}
		if htmlOnly && page.Meta["api-version"] != "1.0" {
			t.Errorf("HTML-only upstream (no sizes) must not claim API 1.1: %v", page.Meta)
		}
		if !htmlOnly && (page.Meta["api-version"] != "1.1" || f["size"] == nil || f["upload-time"] == nil) {
			t.Errorf("JSON upstream: api-version 1.1, size and upload-time expected: %v %v", page.Meta, f)
		}
		url := resolveURL(t, index+"foo-bar/", f["url"].(string))
		code, _, md := get(t, url+".metadata")
		if code != 200 || sha256hex(md) != cm["sha256"] {
			t.Errorf(".metadata: %d, sha256 %s, advertised %v", code, sha256hex(md), cm["sha256"])
		}
		_, _, htmlPage := get(t, index+"foo-bar/", "Accept", "text/html")
		if !bytes.Contains(htmlPage, []byte(`data-core-metadata="sha256=`+sha256hex(wantMeta))) || !bytes.Contains(htmlPage, []byte(`data-dist-info-metadata=`)) {
			t.Errorf("HTML page lacks the metadata attributes:\n%s", htmlPage)
		}
		_, _, depPage := get(t, index+"dep-pkg/", "Accept", "text/html")
		if !bytes.Contains(depPage, []byte(`data-requires-python="&gt;=3.99"`)) {
			t.Errorf("requires-python not HTML-escaped:\n%s", depPage)
		}
		dir := t.TempDir()
		mustPip(t, index, "install", "--target", dir, "nometa")
		if got := installed(t, dir); got != "nometa-1.0" {
			t.Errorf("a project without advertised metadata: %q", got)
		}
		_, _, nm := get(t, index+"nometa/", "Accept", "application/vnd.pypi.simple.v1+json")
		if bytes.Contains(nm, []byte("core-metadata")) {
			t.Errorf("metadata advertised although the upstream has none: %s", nm)
		}
	})

	t.Run("10 content negotiation", func(t *testing.T) {
		cases := []struct{ accept, format, want string }{
			{"application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01", "", "application/vnd.pypi.simple.v1+json"}, // pip
			{"application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01", "", "application/vnd.pypi.simple.v1+json"},   // uv
			{"application/vnd.pypi.simple.v1+json, */*;q=0.1", "", "application/vnd.pypi.simple.v1+json"},                                                     // poetry
			{"text/html", "", "text/html"},
			{"", "", "text/html"},
			{"*/*", "", "text/html"},
			{"application/vnd.pypi.simple.latest+json", "", "application/vnd.pypi.simple.v1+json"},
			{"application/vnd.pypi.simple.v1+html", "", "application/vnd.pypi.simple.v1+html"},
			{"application/vnd.pypi.simple.v42+xml", "", "406"},
			{"text/html", "application/vnd.pypi.simple.v1+json", "application/vnd.pypi.simple.v1+json"},
		}
		for _, path := range []string{"foo-bar/", ""} {
			for _, c := range cases {
				u := index + path
				if c.format != "" {
					u += "?format=" + c.format
				}
				code, hdr, body := get(t, u, "Accept", c.accept)
				got := hdr.Get("Content-Type")
				if code == 406 {
					got = "406"
				}
				if got != c.want {
					t.Errorf("%s Accept %q format %q: got %s (%d), want %s", u, c.accept, c.format, got, code, c.want)
				}
				if code == 200 && !strings.Contains(hdr.Get("Vary"), "Accept") {
					t.Errorf("%s: no Vary: Accept", u)
				}
				if code == 200 && strings.HasSuffix(got, "json") && !json.Valid(body) {
					t.Errorf("%s: invalid JSON", u)
				}
			}
		}
	})

	t.Run("9 fast-deps and require-hashes", func(t *testing.T) {
		dir := t.TempDir()
		mustPip(t, index, "install", "--use-feature=fast-deps", "--target", dir, "yanky==0.9")
		if got := installed(t, dir); got != "yanky-0.9" {
			t.Errorf("fast-deps install: %q", got)
		}
		wheel := up.Wheel(fakepypi.Filename("dep-pkg", "1.0"))
		req := filepath.Join(t.TempDir(), "req.txt")
		os.WriteFile(req, []byte("dep-pkg==1.0 --hash=sha256:"+sha256hex(wheel)+"\n"), 0o644)
		dl := t.TempDir()
		mustPip(t, index, "download", "--require-hashes", "--no-deps", "-r", req, "-d", dl)
		got, _ := os.ReadFile(filepath.Join(dl, fakepypi.Filename("dep-pkg", "1.0")))
		if !bytes.Equal(got, wheel) {
			t.Errorf("pip download --require-hashes: wrong bytes")
		}
		// HEAD and Range as pip's lazy wheels and uv use them, cold and warm.
		for _, name := range []string{"nometa", "nometa"} {
			_, _, body := get(t, index+name+"/", "Accept", "application/vnd.pypi.simple.v1+json")
			var page struct{ Files []map[string]any }
			json.Unmarshal(body, &page)
			u := resolveURL(t, index+name+"/", page.Files[0]["url"].(string))
			w := up.Wheel(fakepypi.Filename(name, "1.0"))
			req, _ := http.NewRequest("HEAD", u, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.ContentLength != int64(len(w)) || resp.Header.Get("Accept-Ranges") != "bytes" || resp.Header.Get("Content-Encoding") != "" {
				t.Errorf("HEAD %s: %d length %d (want %d) Accept-Ranges %q", u, resp.StatusCode, resp.ContentLength, len(w), resp.Header.Get("Accept-Ranges"))
			}
			for _, rc := range []struct {
				rng  string
				code int
				want []byte
			}{{"bytes=-100", 206, w[len(w)-100:]}, {"bytes=0-0", 206, w[:1]}, {"bytes=10-19", 206, w[10:20]}, {"bytes=999999-", 416, nil}} {
				code, hdr, b := get(t, u, "Range", rc.rng)
				if code != rc.code || (rc.want != nil && !bytes.Equal(b, rc.want)) {
					t.Errorf("Range %s: %d (%d bytes), want %d", rc.rng, code, len(b), rc.code)
				}
				if code == 206 && hdr.Get("Content-Range") == "" {
					t.Errorf("Range %s: no Content-Range", rc.rng)
				}
			}
		}
	})

	t.Run("3 a file whose bytes do not match its hash", func(t *testing.T) {
		up.Publish("dep-pkg", fakepypi.Release{Version: "1.5"})
		time.Sleep(1100 * time.Millisecond) // the page TTL
		f := fakepypi.Filename("dep-pkg", "1.5")
		up.Corrupt(f, true)
		dir := t.TempDir()
		out, err := pip(t, index, "install", "--target", dir, "dep-pkg==1.5")
		if err == nil {
			t.Fatalf("pip installed a file with a wrong hash:\n%s", out)
		}
		for _, k := range s3.Keys(t, bucket) {
			if strings.HasSuffix(k, f) {
				t.Fatalf("the corrupt file was stored as %s", k)
			}
		}
		up.Corrupt(f, false)
		time.Sleep(1100 * time.Millisecond) // the failure is remembered for VERIFY_FAILURE_TTL
		mustPip(t, index, "install", "--target", dir, "dep-pkg==1.5")
	})

	// Coalescing concurrent downloads of a file is the fetch core's, not
	// the index format's: it runs once, against the JSON upstream (11 s of
	// the suite's longest test).
	if !htmlOnly {
		t.Run("8 eight concurrent cold downloads of one large wheel", func(t *testing.T) {
			_, _, body := get(t, index+"big-wheel/", "Accept", "application/vnd.pypi.simple.v1+json")
			var page struct{ Files []map[string]any }
			json.Unmarshal(body, &page)
			u := resolveURL(t, index+"big-wheel/", page.Files[0]["url"].(string))
			fn := fakepypi.Filename("big-wheel", "1.0")
			want := up.Wheel(fn)
			up.SetDelay(500 * time.Millisecond)
			defer up.SetDelay(0)
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					resp, err := http.Get(u)
					if err != nil {
						t.Error(err)
						return
					}
					defer resp.Body.Close()
					var buf bytes.Buffer
					_, err = buf.ReadFrom(resp.Body)
					if err != nil || resp.StatusCode != 200 || !bytes.Equal(buf.Bytes(), want) {
						t.Errorf("concurrent download: %d, %d bytes of %d, %v", resp.StatusCode, buf.Len(), len(want), err)
					}
				})
			}
			wg.Wait()
			if n := up.Hits("/files/" + fn); n != 1 {
				t.Errorf("8 concurrent cold downloads made %d upstream requests, want 1", n)
			}
		})
	}

	t.Run("2 install from storage alone after a restart with the upstream down", func(t *testing.T) {
		up.Stop()
		px.Stop()
		px = startProxy(top, env())
		index = px.URL + "/pypi/simple/"
		dir := t.TempDir()
		mustPip(t, index, "install", "--target", dir, "Foo.Bar")
		if got := installed(t, dir); got != "dep_pkg-1.5 foo_bar-1.0" && got != "dep_pkg-1.0 foo_bar-1.0" {
			t.Errorf("install with the upstream down: %q", got)
		}
		code, hdr, _ := get(t, index+"foo-bar/")
		if code != 200 || hdr.Get("X-Mirror-Stale") != "true" {
			t.Errorf("stale page: %d, X-Mirror-Stale %q", code, hdr.Get("X-Mirror-Stale"))
		}
		if code, _, _ := get(t, index+"never-seen/"); code < 500 {
			t.Errorf("a never-seen project with the upstream down: %d, want 5xx", code)
		}
		if err := up.Start(upAddr); err != nil {
			t.Fatal(err)
		}
		if code, _, _ := get(t, index+"does-not-exist/"); code != 404 {
			t.Errorf("unknown project: %d", code)
		}
		get(t, index+"does-not-exist/")
		if n := up.Hits("/simple/does-not-exist/"); n != 1 {
			t.Errorf("two requests for an unknown project made %d upstream requests, want 1", n)
		}
	})
}
