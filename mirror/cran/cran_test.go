package cran_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/fakecran"
	"github.com/mirror-proxy/mirror-proxy/mirror/cran"
	"github.com/mirror-proxy/mirror-proxy/mirror/mirrortest"
	"github.com/mirror-proxy/mirror-proxy/policy"
	"github.com/mirror-proxy/mirror-proxy/proxy"
)

func startUp(t *testing.T) *fakecran.Server {
	up := fakecran.New()
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(up.Stop)
	return up
}

func gunzip(t *testing.T, b []byte) string {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not gzip: %v", err)
	}
	out, _ := io.ReadAll(zr)
	return string(out)
}

func TestParseIndex(t *testing.T) {
	idx, err := cran.ParseIndex([]byte("Package: a\nVersion: 1.0-2\nDepends: R (>= 3.5),\n    methods\nMD5sum: 0123\nDate/Publication: 2024-03-01 10:00:00 UTC\n\nPackage: b.x\nVersion: 2.1\n"))
	if err != nil {
		t.Fatal(err)
	}
	e, ok := idx.Find("a", "1.0-2")
	if !ok || e.MD5sum != "0123" || !e.Published.Equal(time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("a: %+v %v", e, ok)
	}
	if _, ok := idx.Find("b.x", "2.1"); !ok {
		t.Error("b.x 2.1 not found")
	}
	for _, bad := range []string{"<html>nope</html>", "Package: ../x\nVersion: 1.0\n", "just text\n"} {
		if _, err := cran.ParseIndex([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if pkg, ver, typ, ok := cran.ParseFile("data.table_1.15.4.tar.gz"); !ok || pkg != "data.table" || ver != "1.15.4" || typ != "tar.gz" {
		t.Errorf("ParseFile: %q %q %q %v", pkg, ver, typ, ok)
	}
	for _, bad := range []string{"../x_1.0.tar.gz", "x_1.0.tar.bz2", "x.tar.gz", "x_abc.tar.gz"} {
		if _, _, _, ok := cran.ParseFile(bad); ok {
			t.Errorf("ParseFile(%q) accepted", bad)
		}
	}
}

// A version CRAN archives after it was cached is still served at its old
// URL, and at its Archive URL from the same stored object; an archived
// version never cached is fetched from Archive/ and checked as an archive.
func TestArchivedVersions(t *testing.T) {
	up := startUp(t)
	base := mirrortest.Serve(t, proxy.Mirror{Name: "cran", Type: "cran", URL: up.URL()})
	// The commit to storage follows the response: wait until the file is
	// answered from storage.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		code, h, _, _ := mirrortest.Get(t, base+"/src/contrib/hello_1.1.tar.gz")
		if code != 200 {
			t.Fatalf("hello 1.1: %d", code)
		}
		if h.Get("X-Cache") == "HIT" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("hello 1.1 was not stored within 5 s")
		}
	}
	up.Archive("hello", "1.1")
	up.Publish("hello", fakecran.Version{Version: "1.2"})
	for _, p := range []string{"/src/contrib/hello_1.1.tar.gz", "/src/contrib/Archive/hello/hello_1.1.tar.gz"} {
		code, _, b, _ := mirrortest.Get(t, base+p)
		if code != 200 || !bytes.Equal(b, up.Tarball("hello", "1.1")) {
			t.Errorf("%s after archiving: %d", p, code)
		}
	}
	if n := up.Hits("/src/contrib/Archive/hello/hello_1.1.tar.gz"); n != 0 {
		t.Errorf("the Archive URL went upstream %d times; the stored copy serves it", n)
	}
	code, _, b, _ := mirrortest.Get(t, base+"/src/contrib/Archive/hello/hello_1.0.tar.gz")
	if code != 200 || !bytes.Equal(b, up.Tarball("hello", "1.0")) || up.Hits("/src/contrib/Archive/hello/hello_1.0.tar.gz") != 1 {
		t.Errorf("archived hello 1.0: %d", code)
	}
	if code, _, _, _ := mirrortest.Get(t, base+"/src/contrib/Archive/world/hello_1.0.tar.gz"); code != 404 {
		t.Errorf("an Archive URL naming another package: %d, want 404", code)
	}
}

// A snapshot and a cooldown filter PACKAGES and PACKAGES.gz by
// Date/Publication; PACKAGES.rds is then a 404; files of hidden versions
// are a 403 with the reason.
func TestSnapshotAndCooldown(t *testing.T) {
	up := startUp(t)
	up.Publish("fresh", fakecran.Version{Version: "0.1", Time: time.Now().Add(-time.Hour)})
	base := mirrortest.Serve(t, proxy.Mirror{Name: "cran", Type: "cran", URL: up.URL(),
		Cooldown: policy.Cooldown{Age: 72 * time.Hour}, Rules: policy.Rules{Deny: []policy.Deny{{Name: "world", Version: "0.5"}}}})
	_, _, b, _ := mirrortest.Get(t, base+"/src/contrib/PACKAGES")
	if s := string(b); !strings.Contains(s, "Package: hello\nVersion: 1.1") || strings.Contains(s, "Package: fresh") || strings.Contains(s, "Package: world") {
		t.Errorf("PACKAGES under a cooldown and a deny rule:\n%s", s)
	}
	if code, _, _, _ := mirrortest.Get(t, base+"/src/contrib/PACKAGES.rds"); code != 404 {
		t.Errorf("PACKAGES.rds under a policy: %d, want 404", code)
	}
	code, _, body, _ := mirrortest.Get(t, base+"/src/contrib/fresh_0.1.tar.gz")
	if code != 403 || !strings.Contains(string(body), "cooldown") {
		t.Errorf("file of a young version: %d %s", code, body)
	}
	code, _, body, _ = mirrortest.Get(t, base+"/src/contrib/world_0.5.tar.gz")
	if code != 403 || !strings.Contains(string(body), "denied") {
		t.Errorf("file of a denied version: %d %s", code, body)
	}

	// PACKAGES lists current versions only: hello 1.1 (June) and world
	// 0.5 (March) are both after a snapshot of 2024-02-01.
	_, _, gz, _ := mirrortest.Get(t, base+"/@2024-02-01/src/contrib/PACKAGES.gz")
	if s := gunzip(t, gz); strings.Contains(s, "Package: hello") || strings.Contains(s, "Package: world") {
		t.Errorf("snapshot of 2024-02-01:\n%s", s)
	}
	_, _, gz, _ = mirrortest.Get(t, base+"/@2024-07-01/src/contrib/PACKAGES.gz")
	if s := gunzip(t, gz); !strings.Contains(s, "Package: hello\nVersion: 1.1") {
		t.Errorf("snapshot of 2024-07-01:\n%s", s)
	}
	code, _, body, _ = mirrortest.Get(t, base+"/@2024-02-01/src/contrib/hello_1.1.tar.gz")
	if code != 403 || !strings.Contains(string(body), "snapshot") {
		t.Errorf("hello 1.1 under the snapshot of 2024-02-01: %d %s", code, body)
	}
}

// Posit Package Manager's __linux__ trees vary by the client's R version
// and platform: each gets its own stored copy, and the upstream sees the
// client's R agent.
func TestLinuxBinariesKeyedByRAgent(t *testing.T) {
	var mu sync.Mutex
	var agents []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		agents = append(agents, r.Header.Get("User-Agent"))
		mu.Unlock()
		kind := "source"
		if strings.HasPrefix(r.Header.Get("User-Agent"), "R (4.4.1 x86_64-pc-linux-gnu") {
			kind = "binary"
		}
		if strings.HasSuffix(r.URL.Path, "/PACKAGES") {
			w.Write([]byte("Package: hello\nVersion: 1.1\nMD5sum: 00000000000000000000000000000000\nKind: " + kind + "\n"))
			return
		}
		http.NotFound(w, r)
	}))
	defer up.Close()
	base := mirrortest.Serve(t, proxy.Mirror{Name: "cran", Type: "cran", URL: up.URL})
	u := base + "/__linux__/jammy/latest/src/contrib/PACKAGES"
	_, _, b1, _ := mirrortest.Get(t, u, "User-Agent", "R (4.4.1 x86_64-pc-linux-gnu x86_64 linux-gnu)")
	_, _, b2, _ := mirrortest.Get(t, u, "User-Agent", "libcurl/7.88.1")
	if !strings.Contains(string(b1), "Kind: binary") || !strings.Contains(string(b2), "Kind: source") {
		t.Errorf("R 4.4 got %q, another client %q", b1, b2)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(agents) != 2 || !strings.HasPrefix(agents[0], "R (4.4.1 x86_64-pc-linux-gnu x86_64 linux-gnu) mirror-proxy/") || !strings.HasPrefix(agents[1], "mirror-proxy/") {
		t.Errorf("upstream agents: %q", agents)
	}
}

// A PACKAGES.gz that decompresses to more than 64 MiB is refused.
func TestIndexBombIsRefused(t *testing.T) {
	if _, err := cran.ParseIndex(cran.Gzip(bytes.Repeat([]byte("\n"), 100<<20))); err == nil || !strings.Contains(err.Error(), "more than 64 MiB") {
		t.Errorf("a 100 MiB PACKAGES.gz: %v", err)
	}
}

// A version the proxy's cached index still lists as current, but which
// CRAN has since moved to Archive/ (the next version was published), is
// fetched from Archive/ against the index's MD5sum instead of failing
// with a 404.
func TestListedVersionArchivedSince(t *testing.T) {
	up := startUp(t)
	base := mirrortest.Serve(t, proxy.Mirror{Name: "cran", Type: "cran", URL: up.URL(), TTL: time.Hour})
	// R reads PACKAGES.gz (PACKAGES.rds first, where it exists); the
	// proxy keeps it for the TTL.
	if code, _, _, _ := mirrortest.Get(t, base+"/src/contrib/PACKAGES.gz"); code != 200 {
		t.Fatalf("PACKAGES.gz: %d", code)
	}
	up.Archive("hello", "1.1")
	up.Publish("hello", fakecran.Version{Version: "1.2"})
	code, _, b, _ := mirrortest.Get(t, base+"/src/contrib/hello_1.1.tar.gz")
	if code != 200 || !bytes.Equal(b, up.Tarball("hello", "1.1")) {
		t.Fatalf("hello 1.1, listed in the cached index, archived upstream since: %d", code)
	}
	if n := up.Hits("/src/contrib/Archive/hello/hello_1.1.tar.gz"); n != 1 {
		t.Errorf("the Archive URL was asked %d times, want 1", n)
	}
}
