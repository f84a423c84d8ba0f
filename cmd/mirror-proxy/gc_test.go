package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/access"
	"github.com/mirror-proxy/mirror-proxy/internal/fakepackagist"
	"github.com/mirror-proxy/mirror-proxy/mirror/composer"
	"github.com/mirror-proxy/mirror-proxy/proxy"
	"github.com/mirror-proxy/mirror-proxy/storage"
	"github.com/mirror-proxy/mirror-proxy/storage/local"
)

// gcEnv is a storage directory, a fake Packagist and the environment gc
// reads them from.
type gcEnv struct {
	dir string
	st  *local.Store
	up  *fakepackagist.Server
}

func newGCEnv(t *testing.T) *gcEnv {
	up := fakepackagist.New()
	if err := up.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(up.Stop)
	dir := t.TempDir()
	st, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("STORAGE_SOURCE", "local")
	t.Setenv("STORAGE_LOCAL_DIR", dir)
	t.Setenv("MIRRORS", `[{"name":"packagist","type":"composer","url":"`+up.URL()+`"}]`)
	t.Setenv("ACCESS_FLUSH_INTERVAL", "100ms")
	return &gcEnv{dir: dir, st: st, up: up}
}

// replica serves the storage directory like a replica would, until the
// test (or stop) ends it; stop writes its access record.
func (e *gcEnv) replica(t *testing.T) (base string, stop func()) {
	t.Helper()
	srv := proxy.New(proxy.Options{Store: e.st, MetaPrefix: "mirror-meta", DistPrefix: "mirror-dist",
		Mirrors:     []proxy.Mirror{{Name: "packagist", Type: "composer", URL: e.up.URL(), TTL: time.Minute, NotFoundTTL: time.Second}},
		AccessFlush: 100 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l, 10*time.Second) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) } // requests end, then the core stops and flushes
	t.Cleanup(stop)
	return "http://" + l.Addr().String() + "/packagist", stop
}

// dist fetches name@version's dist through base and returns its key.
func (e *gcEnv) dist(t *testing.T, base, name, version string) string {
	t.Helper()
	resp, err := http.Get(base + "/p2/" + name + ".json")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	vs, err := composer.Expand(b, name)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		if v["version"] != version {
			continue
		}
		ref := v["dist"].(map[string]any)["reference"].(string)
		path := "/zipball/" + name + "/" + composer.MirrorVersion(v["version_normalized"].(string)) + "/ref" + composer.MirrorReference(ref) + ".zip"
		resp, err := http.Get(base + path)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v %v", path, resp, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		key := "mirror-dist/packagist" + strings.TrimPrefix(path, "/zipball")
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if _, err := e.st.Stat(context.Background(), key); err == nil {
				return key
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s was not stored", key)
			}
		}
	}
	t.Fatalf("%s %s not in the metadata", name, version)
	return ""
}

// age makes the stored file key days old.
func (e *gcEnv) age(t *testing.T, key string, days int) {
	old := time.Now().Add(-time.Duration(days) * 24 * time.Hour)
	if err := os.Chtimes(filepath.Join(e.dir, filepath.FromSlash(key)), old, old); err != nil {
		t.Fatal(err)
	}
}

func (e *gcEnv) exists(key string) bool {
	_, err := e.st.Stat(context.Background(), key)
	return err == nil
}

// Files served within the window survive gc, others go; a dry run deletes
// nothing; published files and metadata are never touched.
func TestGCDeletesOnlyUnusedFiles(t *testing.T) {
	e := newGCEnv(t)
	base, stop := e.replica(t)
	a := e.dist(t, base, "acme/foo", "1.0.0")
	b := e.dist(t, base, "acme/foo", "1.1.0")
	c := e.dist(t, base, "acme/big", "1.0.0")
	stop()
	// Make them 300 days old, with no record of use but one for b, ten
	// days ago.
	for _, k := range []string{a, b, c} {
		e.age(t, k, 300)
	}
	if err := os.RemoveAll(filepath.Join(e.dir, "mirror-meta", "access")); err != nil {
		t.Fatal(err)
	}
	if err := access.Write(context.Background(), e.st, "mirror-meta/access", access.Day(time.Now().Add(-240*time.Hour)), "r1", []string{b}, time.Now()); err != nil {
		t.Fatal(err)
	}
	// c is served today by a fresh replica (from storage).
	base2, stop2 := e.replica(t)
	resp, err := http.Get(base2 + "/zipball" + strings.TrimPrefix(c, "mirror-dist/packagist"))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("c from storage: %v %v", resp, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	stop2()
	published := "artifact/packagist/dists/x.zip"
	e.st.Put(context.Background(), published, strings.NewReader("x"), storage.PutOptions{Size: 1})
	e.age(t, published, 300)

	var out bytes.Buffer
	if code := gc([]string{"--mirror", "packagist", "--unused-for", "180d"}, &out); code != 0 {
		t.Fatalf("dry run: exit %d: %s", code, out.String())
	}
	if !e.exists(a) || !strings.Contains(out.String(), a) || strings.Contains(out.String(), b) {
		t.Fatalf("the dry run deleted, or named the wrong files: %s", out.String())
	}
	out.Reset()
	if code := gc([]string{"--mirror=packagist", "--unused-for=180d", "--yes"}, &out); code != 0 {
		t.Fatalf("gc --yes: exit %d: %s", code, out.String())
	}
	if e.exists(a) || !e.exists(b) || !e.exists(c) || !e.exists(published) {
		t.Errorf("after gc: a %v (want gone), b %v, c %v, published %v: %s", e.exists(a), e.exists(b), e.exists(c), e.exists(published), out.String())
	}
	if !strings.Contains(out.String(), "1 files") {
		t.Errorf("summary: %s", out.String())
	}
}

// A file being served while gc runs is never deleted, though its last
// record is old: gc waits for the replicas' latest records.
func TestGCSparesFilesServedWhileItRuns(t *testing.T) {
	e := newGCEnv(t)
	base, stop := e.replica(t)
	d := e.dist(t, base, "acme/foo", "1.0.0")
	stop()
	e.age(t, d, 300)
	os.RemoveAll(filepath.Join(e.dir, "mirror-meta", "access"))
	base2, stop2 := e.replica(t)
	defer stop2()
	done := make(chan struct{})
	served := make(chan struct{}, 1)
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if resp, err := http.Get(base2 + "/zipball" + strings.TrimPrefix(d, "mirror-dist/packagist")); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				select {
				case served <- struct{}{}:
				default:
				}
			}
		}
	}()
	<-served
	var out bytes.Buffer
	code := gc([]string{"--mirror", "packagist", "--unused-for", "180d", "--yes"}, &out)
	close(done)
	if code != 0 || !e.exists(d) {
		t.Fatalf("a file served while gc ran was deleted (exit %d): %s", code, out.String())
	}
}

func TestGCArguments(t *testing.T) {
	for _, bad := range [][]string{{"--unused-for", "180d"}, {"--mirror", "m"}, {"--mirror", "m", "--unused-for", "2h"}, {"--mirror", "m", "--unused-for", "soon"}} {
		if _, err := parseGCArgs(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if a, err := parseGCArgs([]string{"--mirror", "m", "--unused-for", "30d", "--keep", "a.lock", "b.lock", "--yes"}); err != nil || a.age != 30*24*time.Hour || len(a.keep) != 2 || !a.yes {
		t.Errorf("%+v %v", a, err)
	}
}
