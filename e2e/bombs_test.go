package e2e

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/testenv"
)

// peakRSS is a process's peak resident set (VmHWM), in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// Six gzip bombs of 2 GiB each (decoded) at once, as six p2 files: each
// is refused at MAX_METADATA_BYTES, the memory they take together is
// bounded (METADATA_MEMORY_BYTES), the process stays under 600 MB at its
// peak, and /healthz answers within a second throughout.
func TestConcurrentGzipBombsAreBoundedTogether(t *testing.T) {
	testenv.Deadline(t, 3*time.Minute)
	// One gzip member of 1 MiB of zeros, 2048 times: 2 GiB decoded (Go's
	// and every gzip reader read concatenated members as one stream).
	var member bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&member, gzip.BestCompression)
	zw.Write(make([]byte, 1<<20))
	zw.Close()
	mux := http.NewServeMux()
	mux.HandleFunc("/packages.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"packages":[],"metadata-url":"/p2/%package%.json"}`))
	})
	mux.HandleFunc("/p2/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Encoding", "gzip")
		for range 2048 {
			if _, err := w.Write(member.Bytes()); err != nil {
				return
			}
		}
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up := &http.Server{Handler: mux}
	go up.Serve(l)
	defer up.Close()
	px := startProxyBin(t, plainBin(t), map[string]string{"STORAGE_LOCAL_DIR": t.TempDir(),
		"MIRRORS": `[{"name":"packagist","type":"composer","url":"http://` + l.Addr().String() + `"}]`})
	get(t, px.URL+"/packagist/packages.json")

	stop := make(chan struct{})
	var slowest time.Duration
	var hw sync.WaitGroup
	hw.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			start := time.Now()
			resp, err := http.Get(px.URL + "/healthz")
			if err == nil {
				resp.Body.Close()
			}
			if d := time.Since(start); d > slowest || err != nil {
				slowest = max(d, slowest)
				if err != nil {
					slowest = time.Hour
				}
			}
		}
	})
	var wg sync.WaitGroup
	codes := make([]int, 6)
	for i := range codes {
		wg.Go(func() { codes[i], _, _ = get(t, fmt.Sprintf("%s/packagist/p2/acme/bomb%d.json", px.URL, i)) })
	}
	wg.Wait()
	close(stop)
	hw.Wait()
	for i, c := range codes {
		if c != http.StatusBadGateway && c != http.StatusServiceUnavailable {
			t.Errorf("bomb %d: %d, want 502 (too large) or 503 (busy)", i, c)
		}
	}
	if rss := peakRSS(t, px.cmd.Process.Pid); rss > 600<<20 {
		t.Errorf("peak RSS %d MB with six 2 GiB gzip bombs, want under 600 MB", rss>>20)
	} else {
		t.Logf("peak RSS %d MB", rss>>20)
	}
	if slowest > time.Second {
		t.Errorf("/healthz took up to %v during the bombs, want under 1 s", slowest)
	}
}
