package main

// The burst: a CI fleet starting at once (PyTorch's CI PyPI cache, nginx,
// was killed by its own liveness probe when ~1,300 runners started
// together: pytorch/ci-infra#516). Thousands of clients ask three
// replicas on one bucket, coordinated by Redis, for cold metadata and
// files; meanwhile /healthz of each replica is probed as a liveness
// probe would. It reports the probes' worst latency, the upstream
// fetches per file and the failed requests.

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mirror-proxy/mirror-proxy/internal/fakepypi"
)

var burstOnly = flag.Bool("burst", false, "run only the burst (2,000 clients, three replicas with Redis, 200 cold files and their pages) and write its section of -out")

type burstSize struct{ clients, files, replicas int }

// burstResult is what one burst measured.
type burstResult struct {
	size                   burstSize
	took                   time.Duration
	requests, failed       int64
	firstFailure           string
	healthWorst            time.Duration
	healthP99              time.Duration
	healthProbes           int
	healthOver1s           int
	fileFetches            map[string]int // upstream GETs per file
	pageFetches            int            // upstream GETs of the simple pages
	clientP50, clientP99   time.Duration  // a client's page + file
	uniqueFetchesOK        bool
	maxFetches, minFetches int
	replicaCounts          map[string]int // the replicas' Redis errors, lease waits and timeouts
}

var probeURLs = flag.String("probe-urls", "", "internal: probe these URLs' /healthz every 100 ms until stdin closes, then print the latencies (see burst.go)")

// probeMain is the liveness prober of the burst, a process of its own.
func probeMain() error {
	stop := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(stop) }()
	var mu sync.Mutex
	var times []time.Duration
	var wg sync.WaitGroup
	for _, u := range strings.Split(*probeURLs, ",") {
		wg.Add(1)
		go func(u string) {
			defer wg.Done()
			pc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			for {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
				start := time.Now()
				resp, err := pc.Get(u + "/healthz")
				took := time.Since(start)
				if err != nil {
					took = 5 * time.Second
				} else {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						took = 5 * time.Second
					}
				}
				mu.Lock()
				times = append(times, took)
				mu.Unlock()
			}
		}(u)
	}
	wg.Wait()
	for _, t := range times {
		fmt.Println(t)
	}
	return nil
}

func runBurst(sz burstSize) (*burstResult, error) {
	dir, err := os.MkdirTemp("", "mirror-burst-")
	if err != nil {
		return nil, err
	}
	e := &env{dir: dir}
	defer e.stop()

	// The upstream: sz.files projects of one 256 KiB wheel each.
	var projects []fakepypi.Project
	for i := 0; i < sz.files; i++ {
		projects = append(projects, fakepypi.Project{Name: fmt.Sprintf("burst-%03d", i),
			Releases: []fakepypi.Release{{Version: "1.0", Size: 256 << 10}}})
	}
	up := fakepypi.NewWith(projects, false)
	if err := up.Start("127.0.0.1:0"); err != nil {
		return nil, err
	}
	defer up.Stop()

	// Redis, S3, three replicas.
	redisBin, err := lookPath("redis-server")
	if err != nil {
		return nil, err
	}
	rport := freePort()
	if err := e.start("redis", exec.Command(redisBin, "--port", fmt.Sprint(rport), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")); err != nil {
		return nil, err
	}
	s3url, _, err := e.startS3("burst")
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(dir, "mirror-proxy")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/mirror-proxy").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build: %v\n%s", err, out)
	}
	var replicas []string
	for i := 0; i < sz.replicas; i++ {
		port := freePort()
		cmd := exec.Command(bin, "serve")
		cmd.Env = append(os.Environ(), fmt.Sprintf("LISTEN_ADDR=127.0.0.1:%d", port), "LOG_LEVEL=warn",
			"STORAGE_SOURCE=s3", "STORAGE_AWS_BUCKET=burst", fmt.Sprintf("REDIS_URL=redis://127.0.0.1:%d/0", rport),
			fmt.Sprintf(`STORAGE_AWS_ARGS={"endpoint":%q,"accessKeyId":"bench","accessKeySecret":"bench-secret","region":"us-east-1","pathStyleEndpoint":true}`, s3url),
			fmt.Sprintf(`MIRRORS=[{"name":"pypi","type":"pypi","url":%q}]`, up.IndexURL()),
			"MIRROR_DIST_CACHE_DIR="+filepath.Join(dir, fmt.Sprintf("dist-%d", i)), "MIRROR_METADATA_CACHE_DIR="+filepath.Join(dir, fmt.Sprintf("meta-%d", i)))
		if err := e.start(fmt.Sprintf("proxy-%d", i), cmd); err != nil {
			return nil, err
		}
		u := fmt.Sprintf("http://127.0.0.1:%d", port)
		if err := waitHTTP(u + "/healthz"); err != nil {
			return nil, err
		}
		replicas = append(replicas, u)
	}

	res := &burstResult{size: sz, fileFetches: map[string]int{}, replicaCounts: map[string]int{}}
	// Liveness probes: each replica's /healthz every 100 ms, on a
	// connection of its own, with a 5 s timeout, from a process of their
	// own (as the kubelet is): this process is busy with the clients.
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	probe := exec.Command(self, "-probe-urls", strings.Join(replicas, ","))
	probeIn, _ := probe.StdinPipe()
	var probeOut strings.Builder
	probe.Stdout, probe.Stderr = &probeOut, os.Stderr
	if err := probe.Start(); err != nil {
		return nil, err
	}
	defer probe.Process.Kill()

	// The clients: each asks one replica for one project's page (JSON),
	// then for the wheel it lists, all released at once.
	tr := &http.Transport{MaxIdleConnsPerHost: sz.clients, MaxConnsPerHost: 0, IdleConnTimeout: time.Minute,
		DialContext: (&net.Dialer{Timeout: 30 * time.Second}).DialContext}
	hc := &http.Client{Transport: tr, Timeout: 5 * time.Minute}
	start := make(chan struct{})
	var wg sync.WaitGroup
	var failed, requests atomic.Int64
	var failMu sync.Mutex
	clientTimes := make([]time.Duration, sz.clients)
	fail := func(msg string) {
		failed.Add(1)
		failMu.Lock()
		if res.firstFailure == "" {
			res.firstFailure = msg
		}
		failMu.Unlock()
	}
	for i := 0; i < sz.clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			base := replicas[i%len(replicas)]
			project := fmt.Sprintf("burst-%03d", i%sz.files)
			<-start
			t0 := time.Now()
			page := base + "/pypi/simple/" + project + "/"
			req, _ := http.NewRequest(http.MethodGet, page, nil)
			req.Header.Set("Accept", "application/vnd.pypi.simple.v1+json")
			requests.Add(1)
			resp, err := hc.Do(req)
			if err != nil {
				fail(fmt.Sprintf("GET %s: %v", page, err))
				return
			}
			var doc struct {
				Files []struct{ Filename, URL string } `json:"files"`
			}
			err = json.NewDecoder(resp.Body).Decode(&doc)
			resp.Body.Close()
			if resp.StatusCode != 200 || err != nil {
				fail(fmt.Sprintf("GET %s: %d %v", page, resp.StatusCode, err))
				return
			}
			var wheel string
			for _, f := range doc.Files {
				if strings.HasSuffix(f.Filename, ".whl") {
					wheel = f.URL
				}
			}
			pu, _ := url.Parse(page)
			fu, err := pu.Parse(wheel)
			if wheel == "" || err != nil {
				fail(fmt.Sprintf("%s lists no wheel", page))
				return
			}
			requests.Add(1)
			resp, err = hc.Get(fu.String())
			if err != nil {
				fail(fmt.Sprintf("GET %s: %v", fu, err))
				return
			}
			n, err := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || err != nil || n < 256<<10 {
				fail(fmt.Sprintf("GET %s: %d, %d bytes, %v", fu, resp.StatusCode, n, err))
				return
			}
			clientTimes[i] = time.Since(t0)
		}(i)
	}
	time.Sleep(500 * time.Millisecond) // the probes' first rounds, idle
	t0 := time.Now()
	close(start)
	wg.Wait()
	res.took = time.Since(t0)
	time.Sleep(300 * time.Millisecond)
	probeIn.Close()
	if err := probe.Wait(); err != nil {
		return nil, fmt.Errorf("the probes: %v", err)
	}
	var probeTimes []time.Duration
	for _, f := range strings.Fields(probeOut.String()) {
		d, err := time.ParseDuration(f)
		if err != nil {
			return nil, fmt.Errorf("the probes said %q", f)
		}
		probeTimes = append(probeTimes, d)
	}
	// What the replicas counted.
	for _, u := range replicas {
		b, err := fetchAll(u + "/metrics")
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(string(b), "\n") {
			for _, name := range []string{"mirror_redis_errors_total", "mirror_lease_waits_total", "mirror_lease_timeouts_total"} {
				if v, ok := strings.CutPrefix(line, name+" "); ok {
					var f float64
					fmt.Sscan(v, &f)
					res.replicaCounts[name] += int(f)
				}
			}
		}
	}

	res.requests, res.failed = requests.Load(), failed.Load()
	sort.Slice(probeTimes, func(i, j int) bool { return probeTimes[i] < probeTimes[j] })
	res.healthProbes = len(probeTimes)
	if len(probeTimes) > 0 {
		res.healthWorst = probeTimes[len(probeTimes)-1]
		res.healthP99 = probeTimes[len(probeTimes)*99/100]
	}
	for _, p := range probeTimes {
		if p >= time.Second {
			res.healthOver1s++
		}
	}
	var ok []time.Duration
	for _, t := range clientTimes {
		if t > 0 {
			ok = append(ok, t)
		}
	}
	sort.Slice(ok, func(i, j int) bool { return ok[i] < ok[j] })
	if len(ok) > 0 {
		res.clientP50, res.clientP99 = ok[len(ok)/2], ok[len(ok)*99/100]
	}
	res.pageFetches = up.HitsPrefix("/simple/")
	res.minFetches = 1 << 30
	for i := 0; i < sz.files; i++ {
		name := fakepypi.Filename(fmt.Sprintf("burst-%03d", i), "1.0")
		c := up.HitsSuffix("/" + name)
		res.fileFetches[name] = c
		res.maxFetches = max(res.maxFetches, c)
		res.minFetches = min(res.minFetches, c)
	}
	res.uniqueFetchesOK = res.maxFetches == 1 && res.minFetches == 1
	return res, nil
}

func (r *burstResult) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Command: `go run ./bench -burst`. Date: %s. %d clients released at once, each asking one of %d replicas "+
		"(one bucket on versitygw, Redis leases) for a cold PyPI page (JSON) and the 256 KiB wheel it lists; %d distinct "+
		"projects, so %d clients per file; each replica's `/healthz` probed every 100 ms on a new connection meanwhile.\n\n",
		time.Now().UTC().Format("2006-01-02"), r.size.clients, r.size.replicas, r.size.files, r.size.clients/r.size.files)
	fmt.Fprintf(&b, "| measurement | result | target |\n|---|---|---|\n")
	fmt.Fprintf(&b, "| requests (pages and wheels), failed | %d, %d failed | none failed |\n", r.requests, r.failed)
	fmt.Fprintf(&b, "| `/healthz` during the burst: worst, p99 (%d probes) | %s, %s | under 1 s |\n", r.healthProbes, r.healthWorst.Round(time.Millisecond), r.healthP99.Round(time.Millisecond))
	fmt.Fprintf(&b, "| upstream fetches per wheel (min–max over %d) | %d–%d | exactly 1 |\n", r.size.files, r.minFetches, r.maxFetches)
	fmt.Fprintf(&b, "| upstream fetches of the %d pages | %d | (no target; one each is the ideal) |\n", r.size.files, r.pageFetches)
	fmt.Fprintf(&b, "| the replicas' Redis errors, lease waits, lease timeouts | %d, %d, %d | no lease timeout (Redis errors here are replies slowed past 300 ms by the load, retried) |\n",
		r.replicaCounts["mirror_redis_errors_total"], r.replicaCounts["mirror_lease_waits_total"], r.replicaCounts["mirror_lease_timeouts_total"])
	fmt.Fprintf(&b, "| burst served in | %s (a client's page and wheel: median %s, p99 %s) | |\n", r.took.Round(time.Millisecond), r.clientP50.Round(time.Millisecond), r.clientP99.Round(time.Millisecond))
	return b.String()
}

// burstMain runs the burst alone and writes its section of *out.
func burstMain() error {
	sz := burstSize{clients: 2000, files: 200, replicas: 3}
	if *smoke {
		sz = burstSize{clients: 60, files: 10, replicas: 3}
	}
	r, err := runBurst(sz)
	if err != nil {
		return err
	}
	text := r.markdown()
	fmt.Print(text)
	var problems []string
	if r.failed > 0 {
		problems = append(problems, fmt.Sprintf("%d requests failed (first: %s)", r.failed, r.firstFailure))
	}
	if r.healthOver1s > 0 {
		problems = append(problems, fmt.Sprintf("%d /healthz probes took 1 s or more", r.healthOver1s))
	}
	if !r.uniqueFetchesOK {
		problems = append(problems, fmt.Sprintf("upstream fetches per wheel %d–%d, want exactly 1", r.minFetches, r.maxFetches))
	}
	if *out != "-" {
		prev, _ := os.ReadFile(*out)
		doc := string(prev)
		const begin, end = "<!-- burst:begin -->\n", "<!-- burst:end -->"
		i, j := strings.Index(doc, begin), strings.Index(doc, end)
		if i < 0 || j < i {
			doc += "\n## A burst of cold clients\n\n" + begin + end + "\n"
			i, j = strings.Index(doc, begin), strings.Index(doc, end)
		}
		doc = doc[:i+len(begin)] + text + doc[j:]
		if err := os.WriteFile(*out, []byte(doc), 0o644); err != nil {
			return err
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("burst: %s", strings.Join(problems, "; "))
	}
	return nil
}
