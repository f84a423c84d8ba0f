package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/faultstore"
	"github.com/mirror-proxy/mirror-proxy/mirror/mirrortest"
	"github.com/mirror-proxy/mirror-proxy/proxy"
	"github.com/mirror-proxy/mirror-proxy/storage"
	"github.com/mirror-proxy/mirror-proxy/storage/local"
)

func serveOn(t *testing.T, st storage.Store, name string) string {
	opts := proxy.Options{Store: st, MetaPrefix: "mirror-meta", DistPrefix: "mirror-dist",
		Mirrors: []proxy.Mirror{{Name: name, Type: name, URL: "http://127.0.0.1:1", Hosted: true, Public: true,
			TTL: time.Minute, NotFoundTTL: time.Second}},
		Tokens:          []proxy.Token{{Name: "ci", SHA256: sha256Sum(e2eWrite), Read: true, Write: true}},
		UpstreamTimeout: 2 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	return mirrortest.ServeProxy(t, proxy.New(opts)) + "/" + name
}

func sha256Sum(s string) [32]byte {
	var out [32]byte
	copy(out[:], sha256Of([]byte(s)))
	return out
}

// A first publish interrupted at each of its writes (the file, the owned
// names, the index; before or after the write lands), in every hosting
// ecosystem: the client is told it failed, one retry of the same publish
// succeeds, and then the name is owned and its index names the bytes
// stored.
func TestFirstPublishInterruptedAtEachWrite(t *testing.T) {
	for _, e := range raceEcosystems() {
		// How many writes one publish makes.
		st0, _ := local.New(t.TempDir())
		count := &faultstore.Store{Store: st0, Prefix: "artifact/"}
		if code, body := e.publish(serveOn(t, count, e.name), 0, 0); code/100 != 2 {
			t.Fatalf("%s: publish: %d %s", e.name, code, body)
		}
		if count.Puts() < 2 {
			t.Fatalf("%s: a publish made %d writes, want the file(s) and the index at least", e.name, count.Puts())
		}
		for step := 1; step <= count.Puts(); step++ {
			for _, landed := range []bool{false, true} {
				dir := t.TempDir()
				st, _ := local.New(dir)
				base := serveOn(t, &faultstore.Store{Store: st, N: step, Landed: landed, Prefix: "artifact/"}, e.name)
				what := fmt.Sprintf("%s, write %d of %d failing (landed %v)", e.name, step, count.Puts(), landed)
				if code, body := e.publish(base, 0, 0); code < 500 {
					t.Errorf("%s: the first publish answered %d %.200s, want a 5xx", what, code, body)
				}
				if code, body := e.publish(base, 0, 0); code/100 != 2 {
					t.Errorf("%s: the retry answered %d %.200s, want success", what, code, body)
				}
				fresh := serveOn(t, st, e.name)
				if listed, match := e.served(t, fresh, 0); !listed || !match {
					t.Errorf("%s: after the retry, listed %v, bytes match %v", what, listed, match)
				}
				rc, _, err := st.Get(context.Background(), "artifact/"+e.name+"/names.json", storage.Whole)
				if err != nil {
					t.Errorf("%s: no owned names after the retry: %v", what, err)
					continue
				}
				names, _ := io.ReadAll(rc)
				rc.Close()
				if !strings.Contains(string(names), "race") {
					t.Errorf("%s: the name is not owned after the retry: %s", what, names)
				}
			}
		}
	}
}
