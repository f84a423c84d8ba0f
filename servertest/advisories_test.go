package servertest_test

import (
	"archive/zip"
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/fakenpm"
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
