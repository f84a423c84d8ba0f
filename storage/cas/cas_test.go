package cas_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/mirror-proxy/mirror-proxy/coord"
	"github.com/mirror-proxy/mirror-proxy/internal/testenv"
	"github.com/mirror-proxy/mirror-proxy/storage"
	"github.com/mirror-proxy/mirror-proxy/storage/cas"
	"github.com/mirror-proxy/mirror-proxy/storage/local"
	s3store "github.com/mirror-proxy/mirror-proxy/storage/s3"
)

// Two processes' worth of stores on one directory, 20 writers adding one
// version each to one index: all 20 are there afterwards.
func TestConcurrentUpdatesAllSurvive(t *testing.T) {
	dir := t.TempDir()
	a, _ := local.New(dir)
	b, _ := local.New(dir)
	stores := []storage.Store{a, b}
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			err := cas.Update(context.Background(), stores[i%2], "artifact/m/acme/lib.json", nil, func(old []byte) ([]byte, error) {
				return append(old, fmt.Sprintf("1.%d.0\n", i)...), nil
			})
			if err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	rc, _, err := a.Get(context.Background(), "artifact/m/acme/lib.json", storage.Whole)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got := readAll(rc)
	for i := 0; i < 20; i++ {
		if !strings.Contains(got, fmt.Sprintf("1.%d.0\n", i)) {
			t.Errorf("version 1.%d.0 was lost:\n%s", i, got)
		}
	}
}

// A change that fails writes nothing.
func TestFailedChangeWritesNothing(t *testing.T) {
	s, _ := local.New(t.TempDir())
	boom := errors.New("version exists")
	err := cas.Update(context.Background(), s, "k", nil, func([]byte) ([]byte, error) { return nil, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
	if _, err := s.Stat(context.Background(), "k"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("something was written: %v", err)
	}
}

func readAll(r interface{ Read([]byte) (int, error) }) string {
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			return sb.String()
		}
	}
}

// On versitygw, whose If-Match is not atomic, a Redis lock around each
// update keeps every version: 20 writers over two clients of one bucket.
func TestConcurrentUpdatesOnVersitygwWithRedis(t *testing.T) {
	srv := testenv.StartS3(t)
	bucket := srv.NewBucket(t)
	r := testenv.StartRedis(t)
	var stores []storage.Store
	var lockers []cas.Locker
	for i := 0; i < 2; i++ {
		st, err := s3store.New(context.Background(), s3store.Config{Bucket: bucket, Endpoint: srv.Endpoint, Region: srv.Region,
			AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey, PathStyle: true})
		if err != nil {
			t.Fatal(err)
		}
		co, err := coord.NewCoordinator(r.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { co.Close() })
		stores, lockers = append(stores, st), append(lockers, co)
	}
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			err := cas.Update(context.Background(), stores[i%2], "artifact/m/acme/lib.json", lockers[i%2], func(old []byte) ([]byte, error) {
				return append(old, fmt.Sprintf("1.%d.0\n", i)...), nil
			})
			if err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	rc, _, err := stores[0].Get(context.Background(), "artifact/m/acme/lib.json", storage.Whole)
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(rc)
	rc.Close()
	for i := 0; i < 20; i++ {
		if !strings.Contains(got, fmt.Sprintf("1.%d.0\n", i)) {
			t.Errorf("version 1.%d.0 was lost:\n%s", i, got)
		}
	}
}
