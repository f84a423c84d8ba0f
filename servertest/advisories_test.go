package servertest_test

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/coord"
	"github.com/mirror-proxy/mirror-proxy/internal/fakenpm"
	"github.com/mirror-proxy/mirror-proxy/internal/testenv"
	"github.com/mirror-proxy/mirror-proxy/mirror/mirrortest"
	"github.com/mirror-proxy/mirror-proxy/osv"
	"github.com/mirror-proxy/mirror-proxy/policy"
	"github.com/mirror-proxy/mirror-proxy/proxy"
	"github.com/mirror-proxy/mirror-proxy/storage/local"
)

// A packument served (and kept for replay) before the advisory data
// arrived is filtered as soon as the data is loaded, not when its memory
// entry expires.
func TestAdvisoryDataEndsReplaysOfUnfilteredDocuments(t *testing.T) {
	up := fakenpm.New()
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	st, _ := local.New(t.TempDir())
	srv := newServer(proxy.Options{Store: st, MetaPrefix: "mirror-meta", DistPrefix: "mirror-dist",
		Mirrors: []proxy.Mirror{{Name: "npm", Type: "npm", URL: up.URL(), TTL: time.Hour, NotFoundTTL: time.Second,
			Advisories: &policy.AdvisoriesConfig{Block: []string{"malware"}}}},
		OSVRefresh: 100 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	base := mirrortest.ServeProxy(t, srv) + "/npm"
	for i := 0; i < 3; i++ { // served, kept, replayed
		if _, body, _ := do(t, "GET", base+"/left-pad"); !strings.Contains(string(body), `"latest":"1.3.0"`) {
			t.Fatalf("before the data: %s", body)
		}
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("MAL-1.json")
	w.Write([]byte(`{"id":"MAL-1","affected":[{"package":{"ecosystem":"npm","name":"left-pad"},"versions":["1.3.0"]}]}`))
	zw.Close()
	zipPath := filepath.Join(t.TempDir(), "all.zip")
	os.WriteFile(zipPath, buf.Bytes(), 0o644)
	if _, err := osv.Import(context.Background(), st, "mirror-meta/osv", "npm", zipPath); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, body, _ := do(t, "GET", base+"/left-pad")
		if strings.Contains(string(body), "MAL-1") && !strings.Contains(string(body), `"latest":"1.3.0"`) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("an hour-fresh packument is still served unfiltered after the advisory data loaded:\n%.300s", body)
		}
	}
}

// With OSV_URL, one replica at a time (a Redis lease) fetches the export,
// checks it and stores it; a new record blocks on every replica within a
// refresh or two; a truncated export is refused and the data in force
// stays.
func TestOSVRefreshReachesEveryReplica(t *testing.T) {
	rd := testenv.StartRedis(t)
	up := fakenpm.New()
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer up.Stop()
	zipOf := func(records ...string) []byte {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		for i, r := range records {
			w, _ := zw.Create(fmt.Sprintf("r%d.json", i))
			w.Write([]byte(r))
		}
		zw.Close()
		return buf.Bytes()
	}
	malA := `{"id":"MAL-A","affected":[{"package":{"ecosystem":"npm","name":"left-pad"},"versions":["1.3.0"]}]}`
	malB := `{"id":"MAL-B","affected":[{"package":{"ecosystem":"npm","name":"left-pad"},"versions":["1.2.0"]}]}`
	var export atomic.Pointer[[]byte]
	var fetches atomic.Int64
	set := func(b []byte) { export.Store(&b) }
	set(zipOf(malA))
	osvSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/npm/all.zip" {
			http.NotFound(w, r)
			return
		}
		fetches.Add(1)
		w.Write(*export.Load())
	}))
	defer osvSrv.Close()
	st, _ := local.New(t.TempDir())
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var bases []string
	for i := 0; i < 2; i++ {
		co, err := coord.NewCoordinator(rd.URL, log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { co.Close() })
		srv := newServer(proxy.Options{Store: st, MetaPrefix: "mirror-meta", DistPrefix: "mirror-dist", Coordinator: co,
			Mirrors: []proxy.Mirror{{Name: "npm", Type: "npm", URL: up.URL(), TTL: time.Hour, NotFoundTTL: time.Second,
				Advisories: &policy.AdvisoriesConfig{Block: []string{"malware"}}}},
			OSVURL: osvSrv.URL, OSVRefresh: 300 * time.Millisecond, Logger: log})
		bases = append(bases, mirrortest.ServeProxy(t, srv)+"/npm")
	}
	waitFor := func(what string, ok func(body string) bool) {
		t.Helper()
		for _, base := range bases {
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				_, body, _ := do(t, "GET", base+"/left-pad")
				if ok(string(body)) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: %s:\n%.400s", base, what, body)
				}
			}
		}
	}
	waitFor("MAL-A never blocked 1.3.0", func(b string) bool { return strings.Contains(b, "MAL-A") })
	set(zipOf(malA, malB))
	waitFor("the new record MAL-B never reached this replica", func(b string) bool { return strings.Contains(b, "MAL-B") })
	set(zipOf(malA, malB)[:100]) // truncated
	time.Sleep(time.Second)      // several refreshes
	waitFor("a truncated export replaced the data in force", func(b string) bool { return strings.Contains(b, "MAL-A") && strings.Contains(b, "MAL-B") })
	t.Logf("%d fetches of the export by two replicas", fetches.Load())
}
