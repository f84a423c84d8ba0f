// Command mirror-proxy is a stateless package mirror and private repository
// for Composer, PyPI, npm, CRAN, Nix and conda that keeps everything it
// fetches and hosts in S3 (or a local directory).
//
//	mirror-proxy serve          run the server (configured by env vars)
//	mirror-proxy serve --help   list every variable with its default
//	mirror-proxy healthcheck    exit 0 if the local server answers /healthz
//	mirror-proxy create-bucket  create STORAGE_AWS_BUCKET if it does not exist
//	mirror-proxy prefetch       fill storage with what lock files name
//	mirror-proxy --version      the build: module version, VCS revision, Go version
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/kelseyhightower/envconfig"

	"github.com/mirror-proxy/mirror-proxy/audit"
	"github.com/mirror-proxy/mirror-proxy/cache"
	"github.com/mirror-proxy/mirror-proxy/coord"
	"github.com/mirror-proxy/mirror-proxy/fetch"
	"github.com/mirror-proxy/mirror-proxy/internal/buildinfo"
	"github.com/mirror-proxy/mirror-proxy/internal/randid"
	_ "github.com/mirror-proxy/mirror-proxy/mirror/all" // every ecosystem registers itself
	"github.com/mirror-proxy/mirror-proxy/proxy"
	"github.com/mirror-proxy/mirror-proxy/storage"
	"github.com/mirror-proxy/mirror-proxy/storage/breaker"
	"github.com/mirror-proxy/mirror-proxy/storage/crypt"
	"github.com/mirror-proxy/mirror-proxy/storage/local"
	"github.com/mirror-proxy/mirror-proxy/storage/route"
	s3store "github.com/mirror-proxy/mirror-proxy/storage/s3"
)

const usage = `mirror-proxy: a stateless package mirror and private repository for Composer, PyPI, npm,
CRAN (R), Nix, conda, Go modules, Cargo, Maven and RubyGems that keeps what it fetches and hosts in S3 (or a local directory).

Usage:
  mirror-proxy serve          run the server; configured by environment variables only
  mirror-proxy serve --help   list every variable with its default
  mirror-proxy healthcheck [URL]
                              exit 0 when the server on LISTEN_ADDR answers /healthz
                              (or when URL answers at all: for other containers)
  mirror-proxy create-bucket  create STORAGE_AWS_BUCKET (STORAGE_SOURCE=s3) unless it exists
  mirror-proxy prefetch --mirror NAME FILE...
                              fetch everything composer.lock, requirements.txt,
                              pylock.toml or package-lock.json files name into storage (verified, as
                              a request would); exit 1 when anything failed
  mirror-proxy gc --mirror NAME --unused-for 180d [--keep FILE...] [--yes]
                              delete mirrored files no replica served for that long
                              (a dry run unless --yes)
  mirror-proxy osv import --ecosystem npm FILE.zip
                              store an OSV export for advisories policies (air-gapped sites)
  mirror-proxy audit [--since 24h] [--mirror M] [--package P] [--json]
                              list the audit trail (AUDIT_PREFIX): publishes, deletes,
                              yanks, refusals, failed authentications
  mirror-proxy storage reencrypt
                              encrypt what was stored before STORAGE_ENCRYPTION was set
  mirror-proxy --version      print the build (module version, VCS revision, Go version)
`

// wantsHelp reports whether args ask for help.
func wantsHelp(args []string) bool {
	return len(args) > 0 && (args[0] == "--help" || args[0] == "-h" || args[0] == "help")
}

func main() {
	args := os.Args[1:]
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	switch args[0] {
	case "serve":
		if len(args) > 1 && (args[1] == "--help" || args[1] == "-h" || args[1] == "help") {
			printEnvHelp()
			return
		}
		if len(args) > 1 {
			fmt.Fprintf(os.Stderr, "mirror-proxy serve takes no arguments (configuration is by environment variables; see mirror-proxy serve --help), got %q\n", args[1:])
			os.Exit(2)
		}
		if err := serve(); err != nil {
			fmt.Fprintln(os.Stderr, "mirror-proxy:", err)
			os.Exit(1)
		}
	case "healthcheck":
		if wantsHelp(args[1:]) {
			fmt.Print("usage: mirror-proxy healthcheck [URL]\n\nExit 0 when the server on LISTEN_ADDR answers /healthz with 200, or, given a URL,\nwhen that URL answers at all (for the containers of other services); else exit 1.\n")
			return
		}
		os.Exit(healthcheck(args[1:]))
	case "prefetch":
		if wantsHelp(args[1:]) {
			fmt.Print(prefetchUsage)
			return
		}
		os.Exit(prefetch(args[1:]))
	case "gc":
		if wantsHelp(args[1:]) {
			fmt.Print(gcUsage)
			return
		}
		os.Exit(gc(args[1:], os.Stdout))
	case "storage":
		os.Exit(storageCommand(args[1:]))
	case "osv":
		os.Exit(osvCommand(args[1:]))
	case "audit":
		os.Exit(auditCommand(args[1:], os.Stdout))
	case "reference": // go generate: the configuration reference in a doc
		if err := writeReference(args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "mirror-proxy reference:", err)
			os.Exit(1)
		}
	case "--version", "version":
		fmt.Println(buildinfo.Read())
	case "create-bucket":
		if err := createBucket(); err != nil {
			fmt.Fprintln(os.Stderr, "mirror-proxy:", err)
			os.Exit(1)
		}
	case "-h", "--help", "help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "mirror-proxy: unknown command %q\n\n%s", args[0], usage)
		os.Exit(2)
	}
}

func printEnvHelp() {
	fmt.Print("mirror-proxy serve: configuration by environment variables\n\n")
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIABLE\tDEFAULT\tDESCRIPTION")
	_ = envconfig.Usagef("", &Config{}, tw, `{{range .}}{{usage_key .}}	{{if eq (usage_key .) "MIRRORS"}}(packagist and pypi, below){{else}}{{usage_default .}}{{end}}	{{usage_description .}}
{{end}}`)
	tw.Flush()
	fmt.Printf("\nDefault MIRRORS: %s\n", DefaultMirrors)
}

func newLogger(c *Config) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.LogLevel))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, opts))
}

// replicaID is REPLICA_ID, or the host name with a random suffix (two
// replicas on one host never share a name in the audit trail).
func replicaID(c *Config) string {
	if c.ReplicaID != "" {
		return c.ReplicaID
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "replica"
	}
	return host + "-" + randid.New()[:8]
}

// auditLogger is the "audit" logger: the audit events on stdout (the
// other logs go to stderr), in LOG_FORMAT, whatever LOG_LEVEL.
func auditLogger(c *Config) *slog.Logger {
	if c.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(os.Stdout, nil)).With("logger", "audit")
	}
	return slog.New(slog.NewJSONHandler(os.Stdout, nil)).With("logger", "audit")
}

func serve() error {
	cfg, err := LoadConfig()
	if err != nil {
		return err
	}
	log := newLogger(cfg)
	slog.SetDefault(log)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return withServer(ctx, cfg, log, func(srv *proxy.Server, _ storage.Store) error {
		l, err := net.Listen("tcp", cfg.ListenAddr)
		if err != nil {
			return fmt.Errorf("LISTEN_ADDR %q: %w", cfg.ListenAddr, err)
		}
		var names []string
		for _, m := range cfg.Mirrors {
			names = append(names, m.Name+"="+m.Type+":"+redactURL(m.URL))
			// What each mirror does, said once: a hosted mirror without url
			// mirrors nothing (the type's default upstream is not implied).
			switch {
			case m.Hosted && m.URL != "":
				log.Info("mirror: mirrors and hosts", "mirror", m.Name, "type", m.Type, "upstream", redactURL(m.URL))
			case m.Hosted:
				log.Info("mirror: hosts only (no url: nothing is mirrored, other names are 404)", "mirror", m.Name, "type", m.Type)
			default:
				log.Info("mirror: mirrors", "mirror", m.Name, "type", m.Type, "upstream", redactURL(m.URL))
			}
		}
		log.Info("listening", "addr", l.Addr().String(), "mirrors", strings.Join(names, " "))
		return srv.Serve(ctx, l, cfg.ShutdownTimeout)
	})
}

// withServer builds the server the configuration describes (storage,
// caches, Redis) and runs fn with it.
func withServer(ctx context.Context, cfg *Config, log *slog.Logger, fn func(*proxy.Server, storage.Store) error) error {
	store, ready, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	if cfg.Encryption != "" {
		keys, err := encryptionKeys(ctx, cfg)
		if err != nil {
			return fmt.Errorf("STORAGE_ENCRYPTION: %w", err)
		}
		store = crypt.New(store, keys)
		log.Info("storage: client-side encryption", "keys", cfg.Encryption)
	}
	guarded := breaker.New(store, breaker.Options{Timeout: cfg.StorageTimeout, OnChange: func(open bool) {
		if open {
			log.Warn("storage keeps failing; not asking it for a while (serving from caches and upstreams)")
		} else {
			log.Info("storage answers again")
		}
	}})
	opts := proxy.Options{
		Store: guarded, MetaPrefix: cfg.MetaPrefix, DistPrefix: cfg.DistPrefix,
		Mirrors: cfg.ProxyMirrors(), MemoryCacheBytes: int64(cfg.MemCacheBytes),
		UpstreamTimeout: cfg.UpstreamTimeout, Logger: log, Ready: ready, LeaseWait: cfg.LeaseWait, PublicURL: cfg.PublicURL,
		TrustedProxies:   cfg.TrustedProxies,
		MaxMetadataBytes: int64(cfg.MaxMetadataBytes), MetadataFetches: cfg.MetadataFetches,
		MetadataMemoryBytes: int64(cfg.MetadataMemory),
		MaxFileBytes:        int64(cfg.MaxFileBytes), FinishShare: offIfZero(cfg.FinishShare),
		// In the environment 0 switches these two off; in Options, 0 is
		// the default.
		UpstreamIdleTimeout: cfg.UpstreamIdleTimeout, VerifyFailureTTL: offIfZero(cfg.VerifyFailureTTL),
		ArtifactPrefix: cfg.ArtifactPrefix, UploadMaxBytes: int64(cfg.UploadMaxBytes),
		StdHTTP: cfg.HTTPServer == "std", AccessFlush: cfg.AccessFlush, OSVRefresh: cfg.OSVRefresh, OSVURL: cfg.OSVURL,
	}
	if cfg.RedisURL != "" {
		co, err := newCoordinator(cfg.RedisURL)
		if err != nil {
			return err
		}
		defer co.Close()
		if err := co.Ping(ctx); err != nil {
			// Not fatal: Redis is an optimisation, never the system of record.
			log.Warn("redis unreachable at start; coordinating in-process until it answers", "err", err)
		}
		opts.Coordinator = co
	}
	if cfg.MetaCacheDir != "" {
		if opts.MetaCache, err = cache.NewDisk(cfg.MetaCacheDir, int64(cfg.MetaCacheBytes)); err != nil {
			return fmt.Errorf("MIRROR_METADATA_CACHE_DIR: %w", err)
		}
	}
	if cfg.DistCacheDir != "" {
		if opts.DistCache, err = cache.NewDisk(cfg.DistCacheDir, int64(cfg.DistCacheBytes)); err != nil {
			return fmt.Errorf("MIRROR_DIST_CACHE_DIR: %w", err)
		}
		opts.DistCacheDir = cfg.DistCacheDir
	}
	if cfg.DebugAddr != "" {
		// Profiles on their own listener, never on the public port.
		dl, err := net.Listen("tcp", cfg.DebugAddr)
		if err != nil {
			return fmt.Errorf("DEBUG_ADDR %q: %w", cfg.DebugAddr, err)
		}
		go http.Serve(dl, http.DefaultServeMux) // net/http/pprof registers there
		log.Info("profiles on /debug/pprof/", "addr", dl.Addr().String())
	}
	if opts.Tokens, err = cfg.Tokens(); err != nil {
		return err
	}
	opts.Audit = audit.New(audit.Config{Replica: replicaID(cfg), Log: auditLogger(cfg),
		Store: guarded, Prefix: cfg.AuditPrefix, Flush: cfg.AuditFlush})
	return fn(proxy.New(opts), guarded)
}

// recheck runs the startup check of an S3 store that was unreachable at
// start until it passes.
func recheck(ctx context.Context, log *slog.Logger, s *s3store.Store, prefix string) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second):
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := s.Check(cctx, prefix)
		cancel()
		if err == nil {
			log.Info("storage reachable; startup check passed")
			return
		}
		if !errors.Is(err, s3store.ErrUnreachable) {
			log.Error("storage answers but refuses the proxy", "err", err)
		}
	}
}

// openStore opens the configured storage as it is (without client-side
// encryption), with its readiness check.
func openStore(ctx context.Context, cfg *Config, log *slog.Logger) (storage.Store, func(context.Context) error, error) {
	if cfg.StorageSource == "s3" {
		if os.Getenv("AWS_EC2_METADATA_DISABLED") == "" && cfg.AWSArgs.Endpoint != "" {
			// Off AWS the instance-metadata probe only adds startup delay.
			os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
		}
		return openS3(ctx, cfg, log)
	}
	s, err := local.New(cfg.StorageLocalDir)
	if err != nil {
		return nil, nil, err
	}
	log.Info("storage: local directory", "dir", s.Dir())
	return s, func(context.Context) error { _, err := os.Stat(s.Dir()); return err }, nil
}

// encryptionKeys are the data keys of STORAGE_ENCRYPTION: a local key
// file, or KMS through the SDK's client (credentials and region as for
// S3; the endpoint from AWS_ENDPOINT_URL_KMS when set).
func encryptionKeys(ctx context.Context, cfg *Config) (crypt.Keys, error) {
	kind, arg, _ := strings.Cut(cfg.Encryption, ":")
	if kind == "key" {
		return crypt.ReadKeyFile(arg)
	}
	awsCfg, err := s3store.AWSConfig(ctx, cfg.S3Config())
	if err != nil {
		return nil, err
	}
	return crypt.NewKMS(kms.NewFromConfig(awsCfg), arg), nil
}

// openS3 opens the S3 store, and one per STORAGE_CLASSES entry routed by
// key prefix, each checked at startup.
func openS3(ctx context.Context, cfg *Config, log *slog.Logger) (storage.Store, func(context.Context) error, error) {
	def, err := checkedS3(ctx, cfg.S3Config(), cfg.MetaPrefix, log)
	if err != nil {
		return nil, nil, err
	}
	log.Info("storage: s3", "bucket", cfg.Bucket, "endpoint", cfg.AWSArgs.Endpoint)
	if len(cfg.StorageClasses) == 0 {
		return def, def.Ping, nil
	}
	routes := map[string]storage.Store{}
	pings := []func(context.Context) error{def.Ping}
	for _, prefix := range cfg.StorageClasses.prefixes() {
		sc := cfg.S3ConfigOf(prefix)
		s, err := checkedS3(ctx, sc, prefix, log)
		if err != nil {
			return nil, nil, fmt.Errorf("STORAGE_CLASSES %q: %w", prefix, err)
		}
		routes[prefix] = s
		pings = append(pings, s.Ping)
		log.Info("storage: s3 for a prefix", "prefix", prefix, "bucket", sc.Bucket, "endpoint", sc.Endpoint,
			"storage_class", sc.StorageClass, "sse", sc.SSE)
	}
	ready := func(ctx context.Context) error {
		for _, p := range pings {
			if err := p(ctx); err != nil {
				return err
			}
		}
		return nil
	}
	return route.New(def, routes), ready, nil
}

// checkedS3 opens an S3 store and checks it (a probe under probePrefix).
// A store that does not answer may be down for a while: the proxy starts
// degraded (caches and upstreams serve) and keeps checking, so that the
// fleet can grow during an outage. A store that answers with a refusal is
// a configuration error.
func checkedS3(ctx context.Context, c s3store.Config, probePrefix string, log *slog.Logger) (*s3store.Store, error) {
	s, err := s3store.New(ctx, c)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = s.Check(cctx, probePrefix)
	cancel()
	switch {
	case errors.Is(err, s3store.ErrUnreachable):
		log.Warn("storage unreachable at start; serving degraded until it answers", "bucket", c.Bucket, "err", err)
		go recheck(ctx, log, s, probePrefix)
	case err != nil:
		return nil, err
	}
	return s, nil
}

// newCoordinator connects to REDIS_URL; its error never repeats the URL.
func newCoordinator(u string) (*coord.Coordinator, error) {
	co, err := coord.NewCoordinator(u, slog.Default())
	if err != nil {
		return nil, configError{"REDIS_URL", err.Error()}
	}
	return co, nil
}

// redactURL drops a URL's userinfo and query for the log.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User, u.RawQuery = nil, ""
	return u.String()
}

func createBucket() error {
	cfg, err := LoadConfig()
	if err != nil {
		return err
	}
	if cfg.StorageSource != "s3" {
		return fmt.Errorf("create-bucket needs STORAGE_SOURCE=s3 (it is %q)", cfg.StorageSource)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := s3store.New(ctx, cfg.S3Config())
	if err != nil {
		return err
	}
	created, err := s.CreateBucket(ctx)
	if err != nil {
		return err
	}
	if created {
		fmt.Printf("created bucket %q\n", cfg.Bucket)
	} else {
		fmt.Printf("bucket %q exists\n", cfg.Bucket)
	}
	return nil
}

func healthcheck(args []string) int {
	client := http.Client{Timeout: 3 * time.Second}
	if len(args) == 1 {
		// Any HTTP answer from another service's URL counts as alive.
		resp, err := client.Get(args[0])
		if err != nil {
			fmt.Fprintln(os.Stderr, "healthcheck:", err)
			return 1
		}
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			fmt.Fprintln(os.Stderr, "healthcheck: status", resp.Status)
			return 1
		}
		return 0
	}
	addr := os.Getenv("LISTEN_ADDR")
	if addr == "" {
		addr = ":8080"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck: LISTEN_ADDR:", err)
		return 1
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	resp, err := client.Get("http://" + net.JoinHostPort(host, port) + "/healthz")
	if err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, "healthcheck: status", resp.Status)
		return 1
	}
	return 0
}

// writeReference regenerates the configuration reference in the file
// args names (docs/configuration.md).
func writeReference(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: mirror-proxy reference FILE")
	}
	b, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	out, err := withReference(string(b))
	if err != nil {
		return err
	}
	return os.WriteFile(args[0], []byte(out), 0o644)
}

// offIfZero maps a setting the environment switches off with 0 to
// fetch.Off.
func offIfZero[T time.Duration | float64](v T) T {
	if v == 0 {
		return fetch.Off
	}
	return v
}
