// Command bench measures mirror-proxy against Debian's nginx configured as
// a caching reverse proxy (proxy_cache) of the same local fake upstreams,
// with the same load generator (wrk), alternating the two, and prints
// ratios proxy/nginx. It writes the results as a Markdown table.
//
//	go run ./bench                 full run, writes BENCHMARKS.md
//	go run ./bench -smoke -out -   tiny sizes, prints only (CI)
//
// Needs wrk, nginx (nginx-light), composer, pip and versitygw; ./scripts/bench
// installs them.
package main

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/mirror-proxy/mirror-proxy/internal/fakecargo"
	"github.com/mirror-proxy/mirror-proxy/internal/fakegoproxy"
	"github.com/mirror-proxy/mirror-proxy/internal/fakenpm"
	"github.com/mirror-proxy/mirror-proxy/internal/fakepackagist"
	"github.com/mirror-proxy/mirror-proxy/internal/fakepypi"
)

var (
	smoke       = flag.Bool("smoke", false, "tiny sizes and durations: check that the harness works")
	out         = flag.String("out", "BENCHMARKS.md", "where to write the results (- for stdout only)")
	rounds      = flag.Int("rounds", 5, "alternating rounds per measurement (medians are reported)")
	duration    = flag.Duration("duration", 5*time.Second, "wrk duration per round")
	keep        = flag.Bool("keep", false, "on failure, keep everything running for an hour (debugging)")
	ceilingFile = flag.String("ceiling-serve", "", "internal: serve this file as the ceiling server (see ceiling.go)")
	ceilingAddr = flag.String("ceiling-addr", "", "internal: the ceiling server's address")
	serve       = flag.Bool("serve", false, "set everything up, print the URLs and wait (for profiling by hand; the proxy's pprof is on DEBUG_ADDR)")
)

type sizes struct {
	composerPkgs, pipPkgs int
	small, large          int64 // warm file sizes
	cold                  int64 // cold file size
	coldRate              int64 // upstream bandwidth for the cold test, bytes/s
	memClients            int
	memSize               int64
	metaVersions          int
}

func main() {
	flag.Parse()
	if *probeURLs != "" {
		if err := probeMain(); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if *ceilingFile != "" {
		fmt.Fprintln(os.Stderr, ceilingServe(*ceilingAddr, *ceilingFile))
		os.Exit(1)
	}
	sz := sizes{composerPkgs: 50, pipPkgs: 30, small: 1 << 20, large: 50 << 20, cold: 50 << 20, coldRate: 50 << 20,
		memClients: 64, memSize: 100 << 20, metaVersions: 260}
	if *smoke {
		sz = sizes{composerPkgs: 3, pipPkgs: 2, small: 64 << 10, large: 256 << 10, cold: 256 << 10, coldRate: 1 << 20,
			memClients: 4, memSize: 1 << 20, metaVersions: 20}
		*rounds, *duration = 1, time.Second
	}
	if *burstOnly {
		if err := burstMain(); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(sz); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// env holds everything the run started.
type env struct {
	stopOnce  sync.Once
	dir       string
	procs     []*exec.Cmd
	proxyURL  string
	proxyPID  int
	debugAddr string
	nginxURL  string
	// nginxCorkURL is the same nginx with tcp_nopush on.
	nginxCorkURL string
	packURL      string
	pypiURL      string
	npmURL       string
	npm          *fakenpm.Server
	goURL        string
	goUp         *fakegoproxy.Server
	cargoURL     string
	cargoUp      *fakecargo.Server
	blobURL      string
	blobs        *blobServer
	pypi         *fakepypi.Server
	pack         *fakepackagist.Server
	// What more proxies need: the S3 server, its client, the binary.
	s3url    string
	s3client *s3.Client
	bin      string
}

// extraProxy starts another proxy on bucket (created), serving the mirror
// "pypi" of the fake PyPI with no disk caches (every read from storage),
// with env added; it returns its URL.
func (e *env) extraProxy(name, bucket string, env ...string) (string, error) {
	if _, err := e.s3client.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		return "", fmt.Errorf("create bucket: %w", err)
	}
	port := freePort()
	cmd := exec.Command(e.bin, "serve")
	cmd.Env = append(append(os.Environ(),
		fmt.Sprintf("LISTEN_ADDR=127.0.0.1:%d", port), "LOG_LEVEL=warn",
		"STORAGE_SOURCE=s3", "STORAGE_AWS_BUCKET="+bucket,
		fmt.Sprintf(`STORAGE_AWS_ARGS={"endpoint":%q,"accessKeyId":"bench","accessKeySecret":"bench-secret","region":"us-east-1","pathStyleEndpoint":true}`, e.s3url),
		fmt.Sprintf(`MIRRORS=[{"name":"pypi","type":"pypi","url":%q,"ttl":"1h"}]`, e.pypiURL)), env...)
	if err := e.start(name, cmd); err != nil {
		return "", err
	}
	u := fmt.Sprintf("http://127.0.0.1:%d", port)
	return u, waitHTTP(u + "/healthz")
}

// stop ends every process the run started: SIGTERM first (SIGQUIT for
// nginx: its graceful stop, which also ends its workers), then, after a grace
// period, SIGKILL to the whole process group, so that no worker is
// orphaned and left listening.
func (e *env) stop() { e.stopOnce.Do(e.stopAll) }

func (e *env) stopAll() {
	for _, p := range e.procs {
		if p.Process == nil {
			continue
		}
		sig := syscall.SIGTERM
		if strings.Contains(filepath.Base(p.Path), "nginx") {
			sig = syscall.SIGQUIT // nginx's graceful stop
		}
		_ = p.Process.Signal(sig)
		done := make(chan struct{})
		go func() { p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
		_ = syscall.Kill(-p.Process.Pid, syscall.SIGKILL) // the group: workers included
		<-done
	}
	os.RemoveAll(e.dir)
}

func freePort() int {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{os.Getenv("GOBIN"), filepath.Join(os.Getenv("HOME"), "go", "bin"), "/usr/sbin"} {
		if p := filepath.Join(d, name); d != "" {
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
	}
	if gp, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(gp)), "bin", name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found: run ./scripts/bench, which installs it", name)
}

func waitHTTP(u string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(u)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer: %v", u, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *env) start(name string, cmd *exec.Cmd) error {
	logf, _ := os.Create(filepath.Join(e.dir, name+".log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so that stop can end its children too; and
	// if the bench itself dies (killed, a second Ctrl-C during the clean
	// up), the kernel sends the stop signal (nginx: its graceful stop,
	// which ends its workers too), so nothing is left listening.
	sig := syscall.SIGTERM
	if strings.Contains(filepath.Base(cmd.Path), "nginx") {
		sig = syscall.SIGQUIT
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: sig}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	e.procs = append(e.procs, cmd)
	return nil
}

// startS3 starts versitygw in the run's directory with bucket created; it
// returns its URL and a client.
func (e *env) startS3(bucket string) (string, *s3.Client, error) {
	vgw, err := lookPath("versitygw")
	if err != nil {
		return "", nil, err
	}
	s3port := freePort()
	os.MkdirAll(filepath.Join(e.dir, "s3", "data"), 0o755)
	os.MkdirAll(filepath.Join(e.dir, "s3", "meta"), 0o755)
	cmd := exec.Command(vgw, "--port", fmt.Sprintf("127.0.0.1:%d", s3port), "posix", "--sidecar", filepath.Join(e.dir, "s3", "meta"), filepath.Join(e.dir, "s3", "data"))
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY=bench", "ROOT_SECRET_KEY=bench-secret")
	if err := e.start("versitygw", cmd); err != nil {
		return "", nil, err
	}
	s3url := fmt.Sprintf("http://127.0.0.1:%d", s3port)
	if err := waitHTTP(s3url); err != nil {
		return "", nil, err
	}
	client := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(s3url), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider("bench", "bench-secret", "")})
	if _, err := client.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		return "", nil, fmt.Errorf("create bucket: %w", err)
	}
	return s3url, client, nil
}

func setup(sz sizes) (*env, error) {
	dir, err := os.MkdirTemp("", "mirror-bench-")
	if err != nil {
		return nil, err
	}
	e := &env{dir: dir}
	// Upstreams.
	cat := map[string][]fakepackagist.Version{}
	for i := 1; i <= sz.composerPkgs; i++ {
		cat[fmt.Sprintf("bench/pkg%02d", i)] = []fakepackagist.Version{{Version: "1.0.0", Ref: fmt.Sprintf("%040d", i)}}
	}
	var meta []fakepackagist.Version
	for i := 0; i < sz.metaVersions; i++ {
		meta = append(meta, fakepackagist.Version{Version: fmt.Sprintf("1.%d.0", i), Ref: fmt.Sprintf("%040x", i+1),
			Require: map[string]string{"php": ">=8.1", "psr/log": "^3.0", "bench/pkg01": "^1.0"}})
	}
	cat["bench/meta"] = meta
	e.pack = fakepackagist.NewWith(cat)
	if err := e.pack.Start("127.0.0.1:0"); err != nil {
		return nil, err
	}
	e.packURL = e.pack.URL()
	var projects []fakepypi.Project
	for i := 1; i <= sz.pipPkgs; i++ {
		projects = append(projects, fakepypi.Project{Name: fmt.Sprintf("benchpkg-%02d", i), Releases: []fakepypi.Release{{Version: "1.0"}}})
	}
	projects = append(projects,
		fakepypi.Project{Name: "blob-small", Releases: []fakepypi.Release{{Version: "1.0", Size: int(sz.small)}}},
		fakepypi.Project{Name: "blob-large", Releases: []fakepypi.Release{{Version: "1.0", Size: int(sz.large)}}})
	e.pypi = fakepypi.NewWith(projects, false)
	if err := e.pypi.Start("127.0.0.1:0"); err != nil {
		return nil, err
	}
	e.pypiURL = e.pypi.IndexURL()
	e.npm = fakenpm.New()
	if err := e.npm.Start("127.0.0.1:0"); err != nil {
		return nil, err
	}
	e.npmURL = e.npm.URL()
	e.goUp = fakegoproxy.New()
	for i := 0; i < sz.metaVersions; i++ {
		e.goUp.Publish(fakegoproxy.Module{Path: "bench.example/meta", Version: fmt.Sprintf("v1.%d.0", i)})
	}
	if err := e.goUp.Start("127.0.0.1:0"); err != nil {
		return nil, err
	}
	e.goURL = e.goUp.URL()
	e.cargoUp = fakecargo.New()
	for i := 0; i < sz.metaVersions; i++ {
		e.cargoUp.Publish(fakecargo.Crate{Name: "bench-meta", Vers: fmt.Sprintf("1.%d.0", i), Deps: map[string]string{"hello": "0.2"}})
	}
	if err := e.cargoUp.Start("127.0.0.1:0"); err != nil {
		return nil, err
	}
	e.cargoURL = e.cargoUp.URL()
	e.blobs = newBlobServer(sz)
	bl, _ := net.Listen("tcp", "127.0.0.1:0")
	go http.Serve(bl, e.blobs)
	e.blobURL = "http://" + bl.Addr().String()

	// S3 (versitygw).
	s3url, client, err := e.startS3("bench")
	if err != nil {
		return e, err
	}
	e.s3url, e.s3client = s3url, client

	// The proxy, built from this tree.
	bin := filepath.Join(dir, "mirror-proxy")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/mirror-proxy").CombinedOutput(); err != nil {
		return e, fmt.Errorf("go build: %v\n%s", err, out)
	}
	e.bin = bin
	// OSV data for the advisories row: records of many other packages and
	// two of bench/meta, stored as an air-gapped site does.
	storageEnv := []string{"STORAGE_SOURCE=s3", "STORAGE_AWS_BUCKET=bench",
		fmt.Sprintf(`STORAGE_AWS_ARGS={"endpoint":%q,"accessKeyId":"bench","accessKeySecret":"bench-secret","region":"us-east-1","pathStyleEndpoint":true}`, s3url)}
	if err := importOSV(bin, filepath.Join(dir, "osv-packagist.zip"), storageEnv); err != nil {
		return e, err
	}
	pport := freePort()
	e.debugAddr = fmt.Sprintf("127.0.0.1:%d", freePort())
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(),
		fmt.Sprintf("LISTEN_ADDR=127.0.0.1:%d", pport), "LOG_LEVEL=warn", "DEBUG_ADDR="+e.debugAddr,
		"STORAGE_SOURCE=s3", "STORAGE_AWS_BUCKET=bench",
		fmt.Sprintf(`STORAGE_AWS_ARGS={"endpoint":%q,"accessKeyId":"bench","accessKeySecret":"bench-secret","region":"us-east-1","pathStyleEndpoint":true}`, s3url),
		"OSV_URL=", "MIRROR_METADATA_CACHE_DIR="+filepath.Join(dir, "meta-cache"), "MIRROR_DIST_CACHE_DIR="+filepath.Join(dir, "dist-cache"),
		"MIRROR_DIST_CACHE_MAX_BYTES=20GiB",
		fmt.Sprintf(`MIRRORS=[{"name":"packagist","type":"composer","url":%q,"ttl":"1h"},{"name":"packagist-cooldown","type":"composer","url":%[1]q,"ttl":"1h","cooldown":"3d","cooldownUnknown":"allow","deny":["bench/meta:0.0.1"]},{"name":"packagist-advisories","type":"composer","url":%[1]q,"ttl":"1h","advisories":{"block":["malware","critical","high"]}},{"name":"pypi","type":"pypi","url":%q,"ttl":"1h"},{"name":"blobs","type":"pypi","url":%q,"ttl":"1h"},{"name":"npm","type":"npm","url":%q,"ttl":"1h"},{"name":"go","type":"go","url":%q,"ttl":"1h","sumdb":[{"key":%q,"url":%q}]},{"name":"cargo","type":"cargo","url":%q,"ttl":"1h"}]`,
			e.packURL, e.pypiURL, e.blobURL+"/simple", e.npmURL, e.goURL, e.goUp.VerifierKey, e.goUp.SumDBURL(), e.cargoURL))
	if err := e.start("proxy", cmd); err != nil {
		return e, err
	}
	e.proxyURL = fmt.Sprintf("http://127.0.0.1:%d", pport)
	e.proxyPID = cmd.Process.Pid
	if err := waitHTTP(e.proxyURL + "/healthz"); err != nil {
		return e, err
	}

	// nginx as a caching reverse proxy of the same upstreams.
	nginx, err := lookPath("nginx")
	if err != nil {
		return e, err
	}
	nport := freePort()
	ndir := filepath.Join(dir, "nginx")
	os.MkdirAll(filepath.Join(ndir, "cache"), 0o755)
	os.MkdirAll(filepath.Join(ndir, "logs"), 0o755)
	pu, _ := url.Parse(e.pypiURL)
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // workers must reach the cache in this run's private temp directory
	}
	// The same caching server twice, with and without tcp_nopush
	// (TCP_CORK): on loopback, corking stalls bodies a little over 64 KB
	// for the 40 ms delayed-ACK timer (the 94 KB p2 file without gzip at
	// 1.6k requests/s), while without it nginx's p99 on small bodies
	// grows. Each measurement runs against both and takes nginx's better.
	cport := freePort()
	server := func(port int, nopush string) string {
		return fmt.Sprintf(`
    server {
        listen 127.0.0.1:%[1]d;
        tcp_nopush %[2]s;
        proxy_cache mirror;
        proxy_cache_valid 200 1h;
        proxy_cache_lock on;
        proxy_cache_use_stale error timeout updating http_500 http_502 http_503 http_504;
        proxy_cache_background_update on;
        # One cached variant per encoding and format asked for, as the
        # upstreams vary on them: an identity client must not get gzip.
        proxy_cache_key $scheme$proxy_host$request_uri$http_accept_encoding$http_accept;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        # Packagist at the root: its packages.json has path-absolute URLs.
        location / { proxy_pass %[3]s; }
        location /pypi/ { proxy_pass http://%[4]s/; }
        location /npm/ { proxy_pass %[6]s/; }
        location /blobs/ { proxy_pass %[5]s/; }
        location /go/ { proxy_pass %[7]s/; }
        location /cargo/ { proxy_pass %[8]s/; }
    }`, port, nopush, e.packURL, pu.Host, e.blobURL, e.npmURL, e.goURL, e.cargoURL)
	}
	conf := user + fmt.Sprintf(`
worker_processes auto;
pid %[1]s/nginx.pid;
error_log %[1]s/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    keepalive_requests 100000;
    client_body_temp_path %[1]s/body; proxy_temp_path %[1]s/proxy; fastcgi_temp_path %[1]s/fcgi; uwsgi_temp_path %[1]s/uwsgi; scgi_temp_path %[1]s/scgi;
    proxy_cache_path %[1]s/cache levels=1:2 keys_zone=mirror:50m max_size=20g inactive=1d use_temp_path=off;
%[2]s
%[3]s
}
`, ndir, server(nport, "off"), server(cport, "on"))
	os.WriteFile(filepath.Join(ndir, "nginx.conf"), []byte(conf), 0o644)
	cmd = exec.Command(nginx, "-p", ndir, "-c", filepath.Join(ndir, "nginx.conf"), "-g", "daemon off;")
	if err := e.start("nginx", cmd); err != nil {
		return e, err
	}
	e.nginxURL = fmt.Sprintf("http://127.0.0.1:%d", nport)
	e.nginxCorkURL = fmt.Sprintf("http://127.0.0.1:%d", cport)
	if err := waitHTTP(e.nginxURL + "/packages.json"); err != nil {
		b, _ := os.ReadFile(filepath.Join(ndir, "logs", "error.log"))
		return e, fmt.Errorf("%v\n%s", err, b)
	}
	return e, nil
}

// blobServer is a PyPI-shaped upstream of large generated files (never
// held in memory), with an optional bandwidth limit, for the cold-file and
// memory measurements.
type blobServer struct {
	mu    sync.Mutex
	files map[string]int64 // name → size
	sums  map[string]string
	rate  int64
}

func gen(name string, size int64, w io.Writer) {
	seed := sha256.Sum256([]byte(name))
	r := mrand.NewChaCha8(seed)
	buf := make([]byte, 64<<10)
	for size > 0 {
		n := int64(len(buf))
		if n > size {
			n = size
		}
		r.Read(buf[:n])
		if _, err := w.Write(buf[:n]); err != nil {
			return
		}
		size -= n
	}
}

func newBlobServer(sz sizes) *blobServer {
	b := &blobServer{files: map[string]int64{}, sums: map[string]string{}}
	add := func(name string, size int64) {
		h := sha256.New()
		gen(name, size, h)
		b.files[name] = size
		b.sums[name] = hex.EncodeToString(h.Sum(nil))
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := 0; i < sz.memClients; i++ {
		wg.Go(func() {
			name := fmt.Sprintf("mem-%02d.bin", i)
			h := sha256.New()
			gen(name, sz.memSize, h)
			mu.Lock()
			b.files[name], b.sums[name] = sz.memSize, hex.EncodeToString(h.Sum(nil))
			mu.Unlock()
		})
	}
	wg.Wait()
	for i := 0; i < 3**rounds; i++ {
		add(fmt.Sprintf("cold-%02d.bin", i), sz.cold)
	}
	return b
}

func (b *blobServer) setRate(r int64) { b.mu.Lock(); b.rate = r; b.mu.Unlock() }

type rateWriter struct {
	w     io.Writer
	rate  int64
	start time.Time
	n     int64
}

func (r *rateWriter) Write(p []byte) (int, error) {
	n, err := r.w.Write(p)
	r.n += int64(n)
	if r.rate > 0 {
		due := r.start.Add(time.Duration(float64(r.n) / float64(r.rate) * float64(time.Second)))
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
	}
	return n, err
}

func (b *blobServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	rate := b.rate
	b.mu.Unlock()
	switch {
	case strings.HasPrefix(r.URL.Path, "/simple/"):
		proj := strings.Trim(strings.TrimPrefix(r.URL.Path, "/simple/"), "/")
		var files []map[string]any
		var names []string
		for n := range b.files {
			if strings.HasPrefix(n, proj+"-") {
				names = append(names, n)
			}
		}
		if len(names) == 0 {
			http.NotFound(w, r)
			return
		}
		sort.Strings(names)
		for _, n := range names {
			files = append(files, map[string]any{"filename": n, "url": "http://" + r.Host + "/files/" + n,
				"hashes": map[string]string{"sha256": b.sums[n]}, "size": b.files[n]})
		}
		w.Header().Set("Content-Type", "application/vnd.pypi.simple.v1+json")
		json.NewEncoder(w).Encode(map[string]any{"meta": map[string]string{"api-version": "1.0"}, "name": proj, "files": files})
	case strings.HasPrefix(r.URL.Path, "/files/"):
		n := strings.TrimPrefix(r.URL.Path, "/files/")
		size, ok := b.files[n]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		w.Header().Set("Content-Type", "application/octet-stream")
		gen(n, size, &rateWriter{w: w, rate: rate, start: time.Now()})
	default:
		http.NotFound(w, r)
	}
}

// wrk runs the load generator and returns requests/s, p99 latency and
// bytes/s.
type wrkResult struct{ rps, p99ms, bps float64 }

var (
	rpsRe  = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	p99Re  = regexp.MustCompile(`99%\s+([0-9.]+)(us|ms|s)`)
	xferRe = regexp.MustCompile(`Transfer/sec:\s+([0-9.]+)([KMG]?B)`)
)

func wrk(u string, conns int, hdr ...string) (wrkResult, error) {
	bin, err := lookPath("wrk")
	if err != nil {
		return wrkResult{}, err
	}
	threads := runtime.NumCPU()
	if threads > conns {
		threads = conns
	}
	args := []string{"-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns), "-d", duration.String(), "--latency"}
	for _, h := range hdr {
		args = append(args, "-H", h)
	}
	outb, err := exec.Command(bin, append(args, u)...).CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk %s: %v\n%s", u, err, outb)
	}
	o := string(outb)
	if strings.Contains(o, "Non-2xx") {
		return wrkResult{}, fmt.Errorf("wrk %s: non-2xx responses\n%s", u, o)
	}
	var r wrkResult
	if m := rpsRe.FindStringSubmatch(o); m != nil {
		r.rps, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := p99Re.FindStringSubmatch(o); m != nil {
		v, _ := strconv.ParseFloat(m[1], 64)
		r.p99ms = map[string]float64{"us": v / 1000, "ms": v, "s": v * 1000}[m[2]]
	}
	if m := xferRe.FindStringSubmatch(o); m != nil {
		v, _ := strconv.ParseFloat(m[1], 64)
		r.bps = v * map[string]float64{"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}[m[2]]
	}
	return r, nil
}

// pairedRounds runs wrk against the proxy and its peer in alternating
// order (proxy first in even rounds, peer first in odd ones, so a drift
// of the machine's speed during a round pair does not favour one side)
// and returns both series, their p99s and the ratio of each pair. With
// several peer URLs (nginx with and without tcp_nopush), every round
// measures each, and the peer with the best median is the one compared
// (not the best of each round, which would favour the peer by picking
// its luckier sample). value picks what is compared (requests or bytes
// per second).
func pairedRounds(proxyURL string, peerURLs []string, conns int, value func(wrkResult) float64, hdr []string) (pr, nr, pp, np, ratios []float64, err error) {
	peers := make([][]wrkResult, len(peerURLs))
	var proxy []wrkResult
	runPeers := func() error {
		for j, u := range peerURLs {
			n, err := wrk(u, conns, hdr...)
			if err != nil {
				return err
			}
			peers[j] = append(peers[j], n)
		}
		return nil
	}
	for i := range *rounds {
		var p wrkResult
		if i%2 == 0 {
			if p, err = wrk(proxyURL, conns, hdr...); err == nil {
				err = runPeers()
			}
		} else {
			if err = runPeers(); err == nil {
				p, err = wrk(proxyURL, conns, hdr...)
			}
		}
		if err != nil {
			return
		}
		proxy = append(proxy, p)
	}
	best, bestMedian := 0, 0.0
	for j, series := range peers {
		var vs []float64
		for _, n := range series {
			vs = append(vs, value(n))
		}
		if m := median(vs); m > bestMedian {
			best, bestMedian = j, m
		}
	}
	for i, p := range proxy {
		n := peers[best][i]
		pr, nr, pp, np = append(pr, value(p)), append(nr, value(n)), append(pp, p.p99ms), append(np, n.p99ms)
		ratios = append(ratios, value(p)/value(n))
	}
	return
}

func rps(r wrkResult) float64 { return r.rps }
func bps(r wrkResult) float64 { return r.bps }

// ratioCell is the median of the paired ratios, with their range.
func ratioCell(ratios []float64) string {
	lo, hi := ratios[0], ratios[0]
	for _, r := range ratios {
		lo, hi = min(lo, r), max(hi, r)
	}
	return fmt.Sprintf("%.2f (%.2f–%.2f)", median(ratios), lo, hi)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

type row struct{ what, proxy, peer, ratio, target string }

func fetchAll(u string, hdr ...string) ([]byte, error) {
	req, _ := http.NewRequest("GET", u, nil)
	for _, h := range hdr {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return b, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return b, err
}

// fileURLFromPage finds a file's URL on the proxy's JSON page.
func fileURLFromPage(page string, filename string) (string, error) {
	b, err := fetchAll(page, "Accept: application/vnd.pypi.simple.v1+json")
	if err != nil {
		return "", err
	}
	var p struct{ Files []map[string]any }
	json.Unmarshal(b, &p)
	for _, f := range p.Files {
		if f["filename"] == filename {
			base, _ := url.Parse(page)
			ref, _ := url.Parse(f["url"].(string))
			return base.ResolveReference(ref).String(), nil
		}
	}
	return "", fmt.Errorf("%s not on %s", filename, page)
}

func storageCalls(proxyURL string) (float64, error) {
	b, err := fetchAll(proxyURL + "/metrics")
	if err != nil {
		return 0, err
	}
	total := 0.0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "mirror_storage_operations_total{") {
			f := strings.Fields(l)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			total += v
		}
	}
	return total, nil
}

func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			f := strings.Fields(l)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM")
}

func timed(u string) (ttfb, total time.Duration, err error) {
	start := time.Now()
	resp, err := http.Get(u)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	buf := make([]byte, 64<<10)
	first := true
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 && first {
			ttfb, first = time.Since(start), false
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return 0, 0, rerr
		}
	}
	if resp.StatusCode != 200 {
		return 0, 0, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return ttfb, time.Since(start), nil
}

func tool(name string, dir string, env []string, args ...string) (time.Duration, error) {
	bin, err := lookPath(name)
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	start := time.Now()
	outb, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("%s %v: %v\n%s", name, args, err, outb)
	}
	return time.Since(start), nil
}

func composerRun(dir, repo string, require []string, args ...string) (time.Duration, error) {
	req := map[string]string{}
	for _, r := range require {
		req[r] = "^1.0"
	}
	cj, _ := json.Marshal(map[string]any{"repositories": []any{map[string]any{"type": "composer", "url": repo}, map[string]any{"packagist.org": false}},
		"config": map[string]any{"secure-http": false}, "require": req})
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "composer.json"), cj, 0o644)
	home := filepath.Join(dir, ".home")
	env := []string{"COMPOSER_HOME=" + home, "COMPOSER_CACHE_DIR=" + filepath.Join(dir, ".cache"), "COMPOSER_NO_INTERACTION=1",
		"COMPOSER_ALLOW_SUPERUSER=1", "COMPOSER_NO_AUDIT=1"}
	return tool("composer", dir, env, append(args, "--no-interaction", "--no-plugins", "--no-scripts", "--no-progress")...)
}

func pipRun(index, target string, pkgs []string) (time.Duration, error) {
	args := append([]string{"-m", "pip", "install", "--isolated", "--disable-pip-version-check", "--no-cache-dir", "--retries", "0",
		"--index-url", index, "--target", target}, pkgs...)
	return tool("python3", "", nil, args...)
}

func f1(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
func f2(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }
func mb(v float64) string { return f1(v/(1<<20)) + " MB/s" }

func run(sz sizes) (err error) {
	e, err := setup(sz)
	if e != nil {
		defer func() {
			if *keep && err != nil {
				fmt.Fprintln(os.Stderr, "bench:", err)
				fmt.Fprintf(os.Stderr, "kept: proxy %s nginx %s dir %s\n", e.proxyURL, e.nginxURL, e.dir)
				time.Sleep(time.Hour)
			}
			e.stop()
		}()
	}
	if err != nil {
		return err
	}
	// Interrupted (Ctrl-C, kill), during a run or -serve: stop everything
	// started, then exit; further signals during the clean up are taken
	// by the same handler, not by the default action, which would leave
	// the processes behind.
	interrupted := make(chan os.Signal, 1)
	signal.Notify(interrupted, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(interrupted)
	var rows []row
	logf := func(format string, a ...any) { fmt.Fprintf(os.Stderr, format+"\n", a...) }
	logf("proxy %s, nginx %s, upstreams %s %s %s, files in %s", e.proxyURL, e.nginxURL, e.packURL, e.pypiURL, e.blobURL, e.dir)
	if *serve {
		logf("serving until interrupted; proxy profiles at http://%s/debug/pprof/", e.debugAddr)
		<-interrupted
		return nil
	}
	go func() {
		<-interrupted
		logf("interrupted: stopping everything the run started")
		e.stop()
		os.Exit(130)
	}()

	// 1. Warm metadata.
	type target struct{ name, proxy, nginx, nginxCork, accept string }
	metaTargets := []target{
		{"Composer p2 file (bench/meta)", e.proxyURL + "/packagist/p2/bench/meta.json", e.nginxURL + "/p2/bench/meta.json", e.nginxCorkURL + "/p2/bench/meta.json", "application/json"},
		{"PyPI simple JSON page", e.proxyURL + "/pypi/simple/benchpkg-01/", e.nginxURL + "/pypi/simple/benchpkg-01/", e.nginxCorkURL + "/pypi/simple/benchpkg-01/", "application/vnd.pypi.simple.v1+json"},
		{"npm packument, abbreviated (many-versions)", e.proxyURL + "/npm/many-versions", e.nginxURL + "/npm/many-versions", e.nginxCorkURL + "/npm/many-versions", "application/vnd.npm.install-v1+json"},
		{fmt.Sprintf("Go module version list (@v/list, %d versions)", sz.metaVersions), e.proxyURL + "/go/bench.example/meta/@v/list", e.nginxURL + "/go/bench.example/meta/@v/list", e.nginxCorkURL + "/go/bench.example/meta/@v/list", "*/*"},
		{fmt.Sprintf("Cargo sparse index file (%d versions)", sz.metaVersions), e.proxyURL + "/cargo/be/nc/bench-meta", e.nginxURL + "/cargo/be/nc/bench-meta", e.nginxCorkURL + "/cargo/be/nc/bench-meta", "*/*"},
	}
	for _, t := range metaTargets {
		// Clients that send Accept-Encoding: gzip (composer, pip) and
		// clients that do not (curl, many libraries and health checkers).
		for _, enc := range []struct{ label, header string }{{"gzip", "Accept-Encoding: gzip"}, {"no gzip", "Accept-Encoding: identity"}} {
			hdr := []string{enc.header, "Accept: " + t.accept}
			body, err := fetchAll(t.proxy, "Accept: "+t.accept)
			if err != nil {
				return err
			}
			fetchAll(t.nginx, hdr...)
			fetchAll(t.proxy, hdr...)
			pr, nr, pp, np, ratios, err := pairedRounds(t.proxy, []string{t.nginx, t.nginxCork}, 64, rps, hdr)
			if err != nil {
				return err
			}
			logf("%s, %s (%d bytes uncompressed): proxy %v rps, nginx %v rps, ratios %v", t.name, enc.label, len(body), pr, nr, ratios)
			rows = append(rows, row{"warm metadata, " + t.name + fmt.Sprintf(" (%d KB), %s, 64 conns: requests/s", len(body)>>10, enc.label),
				f1(median(pr)), f1(median(nr)), ratioCell(ratios), "≥ 1.0"})
			rows = append(rows, row{"warm metadata, " + t.name + ", " + enc.label + ": p99 latency (ms)", f2(median(pp)), f2(median(np)), f2(median(pp) / median(np)), ""})
		}
	}

	// The ceiling (ceiling.go): the same 94 KB p2 bytes, sent plain by a
	// minimal Go server, against nginx in the same rounds.
	{
		hdr := []string{"Accept-Encoding: identity", "Accept: application/json"}
		t := metaTargets[0]
		body, err := fetchAll(t.proxy, hdr...)
		if err != nil {
			return err
		}
		cu, err := e.startCeiling(body)
		if err != nil {
			return err
		}
		cr, nr, _, _, ratios, err := pairedRounds(cu, []string{t.nginx, t.nginxCork}, 64, rps, hdr)
		if err != nil {
			return err
		}
		logf("ceiling, p2 file plain: %v rps, nginx %v rps, ratios %v", cr, nr, ratios)
		rows = append(rows, row{fmt.Sprintf("reference: a minimal Go server sending the same p2 file (%d KB) from memory, no gzip, 64 conns: requests/s (the ceiling of the proxy's design, see below)", len(body)>>10),
			f1(median(cr)), f1(median(nr)), ratioCell(ratios), ""})
	}

	// The same p2 file under a 3-day cooldown and a deny rule: the
	// filtered document is computed once per stored version, so the
	// policies should cost nothing measurable (peer: the same proxy's
	// unfiltered mirror of the same upstream, in the same rounds).
	{
		cooled, plain := e.proxyURL+"/packagist-cooldown/p2/bench/meta.json", e.proxyURL+"/packagist/p2/bench/meta.json"
		hdr := []string{"Accept-Encoding: gzip", "Accept: application/json"}
		if _, err := fetchAll(cooled, hdr...); err != nil {
			return err
		}
		cr, pr, _, _, ratios, err := pairedRounds(cooled, []string{plain}, 64, rps, hdr)
		if err != nil {
			return err
		}
		logf("p2 file under a cooldown and a deny rule: %v rps, without: %v rps, ratios %v", cr, pr, ratios)
		rows = append(rows, row{"warm metadata, Composer p2 file under a 3-day cooldown and a deny rule, gzip: requests/s, peer = the proxy without policies",
			f1(median(cr)), f1(median(pr)), ratioCell(ratios), "≈ 1.0"})
	}

	// The same p2 file under an advisories policy, with OSV data of 20,000
	// records of which two name bench/meta: filtered once per stored
	// version and advisory data, so this too should cost nothing
	// measurable.
	{
		advised, plain := e.proxyURL+"/packagist-advisories/p2/bench/meta.json", e.proxyURL+"/packagist/p2/bench/meta.json"
		hdr := []string{"Accept-Encoding: gzip", "Accept: application/json"}
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
			rz, _ := fetchAll(e.proxyURL + "/readyz")
			if bytes.Contains(rz, []byte(`"osv_Packagist":"`)) && !bytes.Contains(rz, []byte(`"osv_Packagist":"no data`)) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("the OSV data was never loaded: %s", rz)
			}
		}
		body, err := fetchAll(advised, "Accept: application/json")
		if err != nil {
			return err
		}
		if !bytes.Contains(body, []byte("GHSA-bench-0001")) {
			return fmt.Errorf("the advisories mirror does not name GHSA-bench-0001 in its warning: %.300s", body)
		}
		ar, pr, _, _, ratios, err := pairedRounds(advised, []string{plain}, 64, rps, hdr)
		if err != nil {
			return err
		}
		logf("p2 file under an advisories policy: %v rps, without: %v rps, ratios %v", ar, pr, ratios)
		rows = append(rows, row{"warm metadata, Composer p2 file under an advisories policy (20,000 OSV records, 2 of the package), gzip: requests/s, peer = the proxy without policies",
			f1(median(ar)), f1(median(pr)), ratioCell(ratios), "≈ 1.0"})
	}

	// 2. Warm files.
	var warmFiles []string
	for _, f := range []struct {
		label, project string
		size           int64
	}{{"small", "blob-small", sz.small}, {"large", "blob-large", sz.large}} {
		fn := fakepypi.Filename(f.project, "1.0")
		pu, err := fileURLFromPage(e.proxyURL+"/pypi/simple/"+f.project+"/", fn)
		if err != nil {
			return err
		}
		nu := e.nginxURL + "/pypi/files/" + fn
		if _, err := fetchAll(pu); err != nil {
			return err
		}
		fetchAll(pu)
		fetchAll(nu)
		warmFiles = append(warmFiles, pu)
		pb, nb, _, _, ratios, err := pairedRounds(pu, []string{nu, e.nginxCorkURL + "/pypi/files/" + fn}, 16, bps, nil)
		if err != nil {
			return err
		}
		logf("warm file %s: proxy %v B/s, nginx %v B/s, ratios %v", f.label, pb, nb, ratios)
		rows = append(rows, row{fmt.Sprintf("warm file %.1f MB, 16 conns: throughput", float64(f.size)/(1<<20)),
			mb(median(pb)), mb(median(nb)), ratioCell(ratios), "≥ 0.9"})
	}
	// 2b. The cost of client-side encryption: the large file read from
	// storage (no disk cache) by a proxy with STORAGE_ENCRYPTION, against
	// one without, each on its own bucket.
	{
		key := make([]byte, 32)
		rand.Read(key)
		keyFile := filepath.Join(e.dir, "storage.key")
		os.WriteFile(keyFile, key, 0o600)
		encURL, err := e.extraProxy("proxy-encrypted", "bench-encrypted", "STORAGE_ENCRYPTION=key:"+keyFile)
		if err != nil {
			return err
		}
		plainURL, err := e.extraProxy("proxy-plain", "bench-plain")
		if err != nil {
			return err
		}
		fn := fakepypi.Filename("blob-large", "1.0")
		var urls []string
		for _, base := range []string{encURL, plainURL} {
			u, err := fileURLFromPage(base+"/pypi/simple/blob-large/", fn)
			if err != nil {
				return err
			}
			if _, err := fetchAll(u); err != nil { // stored
				return err
			}
			urls = append(urls, u)
		}
		time.Sleep(time.Second) // the commits follow the responses
		eb, pb, _, _, ratios, err := pairedRounds(urls[0], urls[1:], 4, bps, nil)
		if err != nil {
			return err
		}
		logf("warm file from storage, encrypted: %v B/s, plaintext: %v B/s, ratios %v", eb, pb, ratios)
		rows = append(rows, row{fmt.Sprintf("warm file %.1f MB from storage (no disk cache), 4 conns: throughput with STORAGE_ENCRYPTION, peer = the same without", float64(sz.large)/(1<<20)),
			mb(median(eb)), mb(median(pb)), ratioCell(ratios), ""})
	}

	// 6a. Storage calls on warm requests: everything below was served before.
	before, _ := storageCalls(e.proxyURL)
	warm := []string{metaTargets[0].proxy, metaTargets[1].proxy, warmFiles[0], e.proxyURL + "/packagist/packages.json"}
	for i := 0; i < 1000; i++ {
		if _, err := fetchAll(warm[i%len(warm)], "Accept-Encoding: gzip", "Accept: application/vnd.pypi.simple.v1+json"); err != nil {
			return err
		}
	}
	after, _ := storageCalls(e.proxyURL)
	rows = append(rows, row{"storage calls per 1,000 warm requests (p2, simple page, file, packages.json)", f1(after - before), "n/a", "", "0"})

	// 3. Cold file through a bandwidth-limited upstream.
	e.blobs.setRate(sz.coldRate)
	var pt, dt, nt, pf, df []float64
	for i := 0; i < *rounds; i++ {
		names := []string{fmt.Sprintf("cold-%02d.bin", 3*i), fmt.Sprintf("cold-%02d.bin", 3*i+1), fmt.Sprintf("cold-%02d.bin", 3*i+2)}
		pu, err := fileURLFromPage(e.proxyURL+"/blobs/simple/cold/", names[0])
		if err != nil {
			return err
		}
		ttfb, total, err := timed(pu)
		if err != nil {
			return err
		}
		pf, pt = append(pf, ttfb.Seconds()*1000), append(pt, total.Seconds())
		ttfb, total, err = timed(e.blobURL + "/files/" + names[1])
		if err != nil {
			return err
		}
		df, dt = append(df, ttfb.Seconds()*1000), append(dt, total.Seconds())
		_, total, err = timed(e.nginxURL + "/blobs/files/" + names[2])
		if err != nil {
			return err
		}
		nt = append(nt, total.Seconds())
	}
	e.blobs.setRate(0)
	rows = append(rows, row{fmt.Sprintf("cold file %.0f MB at %.0f MB/s upstream: total time (s), peer = direct download", float64(sz.cold)/(1<<20), float64(sz.coldRate)/(1<<20)),
		f2(median(pt)), f2(median(dt)), f2(median(pt) / median(dt)), "≤ 1.05"})
	rows = append(rows, row{"cold file: time to first byte (ms), peer = direct download", f1(median(pf)), f1(median(df)), f2(median(pf) / median(df)), ""})
	rows = append(rows, row{"cold file: total time (s), peer = nginx (cold)", f2(median(pt)), f2(median(nt)), f2(median(pt) / median(nt)), ""})

	// 4. Installs, warm; 6b. storage calls per cold install.
	var require []string
	for i := 1; i <= sz.composerPkgs; i++ {
		require = append(require, fmt.Sprintf("bench/pkg%02d", i))
	}
	before, _ = storageCalls(e.proxyURL)
	if _, err := composerRun(filepath.Join(e.dir, "c-cold"), e.proxyURL+"/packagist", require, "update"); err != nil {
		return err
	}
	after, _ = storageCalls(e.proxyURL)
	coldCalls := after - before
	composerRun(filepath.Join(e.dir, "n-cold"), e.nginxURL, require, "update")
	var pc, nc []float64
	for i := range *rounds {
		d, err := composerRun(filepath.Join(e.dir, fmt.Sprintf("c-%d", i)), e.proxyURL+"/packagist", require, "update")
		if err != nil {
			return err
		}
		n, err := composerRun(filepath.Join(e.dir, fmt.Sprintf("n-%d", i)), e.nginxURL, require, "update")
		if err != nil {
			return err
		}
		pc, nc = append(pc, d.Seconds()), append(nc, n.Seconds())
	}
	rows = append(rows, row{fmt.Sprintf("warm `composer update` of %d packages, empty client cache: wall time (s)", sz.composerPkgs),
		f2(median(pc)), f2(median(nc)), f2(median(pc) / median(nc)), ""})
	rows = append(rows, row{fmt.Sprintf("storage calls during a cold `composer update` of %d packages", sz.composerPkgs), f1(coldCalls), "n/a", "", ""})
	var pkgs []string
	for i := 1; i <= sz.pipPkgs; i++ {
		pkgs = append(pkgs, fmt.Sprintf("benchpkg-%02d", i))
	}
	if _, err := pipRun(e.proxyURL+"/pypi/simple/", filepath.Join(e.dir, "p-cold"), pkgs); err != nil {
		return err
	}
	pipRun(e.nginxURL+"/pypi/simple/", filepath.Join(e.dir, "pn-cold"), pkgs)
	var pp, np []float64
	for i := range *rounds {
		d, err := pipRun(e.proxyURL+"/pypi/simple/", filepath.Join(e.dir, fmt.Sprintf("p-%d", i)), pkgs)
		if err != nil {
			return err
		}
		n, err := pipRun(e.nginxURL+"/pypi/simple/", filepath.Join(e.dir, fmt.Sprintf("pn-%d", i)), pkgs)
		if err != nil {
			return err
		}
		pp, np = append(pp, d.Seconds()), append(np, n.Seconds())
	}
	rows = append(rows, row{fmt.Sprintf("warm `pip install` of %d packages: wall time (s)", sz.pipPkgs), f2(median(pp)), f2(median(np)), f2(median(pp) / median(np)), ""})

	// 5. Memory: many distinct cold files at once.
	var wg sync.WaitGroup
	var merr error
	var mu sync.Mutex
	page := e.proxyURL + "/blobs/simple/mem/"
	fetchAll(page, "Accept: application/vnd.pypi.simple.v1+json")
	for i := 0; i < sz.memClients; i++ {
		wg.Go(func() {
			u, err := fileURLFromPage(page, fmt.Sprintf("mem-%02d.bin", i))
			if err == nil {
				_, err = fetchAll(u)
			}
			if err != nil {
				mu.Lock()
				merr = err
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if merr != nil {
		return merr
	}
	rss, err := peakRSS(e.proxyPID)
	if err != nil {
		return err
	}
	rows = append(rows, row{fmt.Sprintf("peak RSS of the proxy during the whole run, incl. %d clients downloading distinct %.0f MB files cold", sz.memClients, float64(sz.memSize)/(1<<20)),
		f1(float64(rss)/(1<<20)) + " MB", "n/a", "", "< 150 MB"})

	return report(rows)
}

func report(rows []row) error {
	var b strings.Builder
	host, _ := os.Hostname()
	cpu := "unknown CPU"
	if c, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if m := regexp.MustCompile(`model name\s*:\s*(.*)`).FindSubmatch(c); m != nil {
			cpu = string(m[1])
		}
	}
	fmt.Fprintf(&b, "| measurement | mirror-proxy | peer | ratio | target |\n|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", r.what, r.proxy, r.peer, r.ratio, r.target)
	}
	table := b.String()
	fmt.Print(table)
	if *out == "-" {
		return nil
	}
	head := fmt.Sprintf("Machine: %s, %d cores (%s), Go %s. Date: %s. Command: `./scripts/bench` (`go run ./bench -rounds %d -duration %s`).\nPeer: Debian's nginx with proxy_cache in front of the same fake upstreams, measured in the same run with the same wrk, alternating; nginx runs with tcp_nopush on and off, and the setting with the better median is the peer; medians of %d rounds (ratio: median of the rounds' ratios, with their range).\n\n",
		host, runtime.NumCPU(), cpu, runtime.Version(), time.Now().UTC().Format("2006-01-02"), *rounds, *duration, *rounds)
	prev, _ := os.ReadFile(*out)
	doc := string(prev)
	const begin, end = "<!-- results:begin -->\n", "<!-- results:end -->"
	i, j := strings.Index(doc, begin), strings.Index(doc, end)
	if i < 0 || j < i {
		doc = "# Benchmarks\n\n" + begin + end + "\n"
		i, j = strings.Index(doc, begin), strings.Index(doc, end)
	}
	doc = doc[:i+len(begin)] + head + table + doc[j:]
	return os.WriteFile(*out, []byte(doc), 0o644)
}

// importOSV writes a synthetic OSV Packagist export to path (20,000
// records of other packages; GHSA-bench-0001, high, on bench/meta 1.3.0
// to 1.5.0; MAL-bench-0001 on 1.7.0) and stores it with the proxy's osv
// import.
func importOSV(bin, path string, storageEnv []string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	zw := zip.NewWriter(f)
	add := func(id, body string) {
		w, _ := zw.Create(id + ".json")
		io.WriteString(w, body)
	}
	for i := 0; i < 20_000; i++ {
		id := fmt.Sprintf("GHSA-other-%05d", i)
		add(id, fmt.Sprintf(`{"id":%q,"summary":"A vulnerability in other/pkg%d","database_specific":{"severity":"HIGH"},"affected":[{"package":{"ecosystem":"Packagist","name":"other/pkg%d"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1.%d.0"}]}]}]}`, id, i, i%5000, i%10))
	}
	add("GHSA-bench-0001", `{"id":"GHSA-bench-0001","summary":"A high one","database_specific":{"severity":"HIGH"},"affected":[{"package":{"ecosystem":"Packagist","name":"bench/meta"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"1.3.0"},{"fixed":"1.6.0"}]}]}]}`)
	add("MAL-bench-0001", `{"id":"MAL-bench-0001","summary":"Malicious code","affected":[{"package":{"ecosystem":"Packagist","name":"bench/meta"},"versions":["1.7.0"]}]}`)
	if err := zw.Close(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	cmd := exec.Command(bin, "osv", "import", "--ecosystem", "Packagist", path)
	cmd.Env = append(os.Environ(), storageEnv...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("osv import: %v\n%s", err, out)
	}
	return nil
}
