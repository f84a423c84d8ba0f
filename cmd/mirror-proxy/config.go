package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/mirror-proxy/mirror-proxy/mirror"
	"github.com/mirror-proxy/mirror-proxy/policy"
	"github.com/mirror-proxy/mirror-proxy/proxy"
	"github.com/mirror-proxy/mirror-proxy/storage/crypt"
	s3store "github.com/mirror-proxy/mirror-proxy/storage/s3"
)

// Config is everything the proxy reads from the environment. Names follow
// Packeton's where Packeton has one, so that its users feel at home.
type Config struct {
	ListenAddr     string `envconfig:"LISTEN_ADDR" default:":8080" desc:"address the HTTP server listens on"`
	HTTPServer     string `envconfig:"HTTP_SERVER" default:"fast" desc:"fast: GET and HEAD go through the proxy's own HTTP/1.1 loop (faster on warm hits), everything else through Go's net/http; std: net/http for everything"`
	TrustedProxies CIDRs  `envconfig:"TRUSTED_PROXIES" desc:"comma-separated CIDRs of load balancers whose X-Forwarded-For and X-Forwarded-Proto are believed (client address in logs, scheme of the URLs the proxy writes); replaces the default, loopback only"`
	PublicURL      string `envconfig:"PUBLIC_URL" desc:"optional external base URL (https://mirror.example.com) for the few absolute URLs the proxy writes; empty: from each request's Host"`

	StorageSource   string `envconfig:"STORAGE_SOURCE" default:"local" desc:"where objects are kept: local (a directory) or s3"`
	StorageLocalDir string `envconfig:"STORAGE_LOCAL_DIR" default:"./data" desc:"directory of the local storage"`

	Bucket         string         `envconfig:"STORAGE_AWS_BUCKET" desc:"S3 bucket (required with STORAGE_SOURCE=s3)"`
	Prefix         string         `envconfig:"STORAGE_AWS_PREFIX" default:"packeton" desc:"key prefix of private package dists (Packeton's meaning; reserved, not used yet)"`
	ArtifactPrefix string         `envconfig:"STORAGE_AWS_ARTIFACT_PREFIX" default:"artifact" desc:"key prefix of published (hosted) packages: <prefix>/<mirror>/... (also used in the local directory)"`
	MetaPrefix     string         `envconfig:"STORAGE_AWS_MIRROR_META_PREFIX" default:"mirror-meta" desc:"key prefix of mirrored metadata (also used in the local directory)"`
	DistPrefix     string         `envconfig:"STORAGE_AWS_MIRROR_DIST_PREFIX" default:"mirror-dist" desc:"key prefix of mirrored files (also used in the local directory)"`
	AWSArgs        AWSArgs        `envconfig:"STORAGE_AWS_ARGS" default:"[]" desc:"JSON object: endpoint, accessKeyId, accessKeySecret, sessionToken, region, roleArn, webIdentityTokenFile, roleSessionName, pathStyleEndpoint, profile; what is missing comes from the AWS SDK's default chain"`
	PartSize       Bytes          `envconfig:"STORAGE_AWS_PART_SIZE" default:"8MiB" desc:"S3 multipart part size (min 5MiB)"`
	UploadBuffers  int            `envconfig:"STORAGE_AWS_UPLOAD_BUFFERS" default:"4" desc:"S3 part buffers held at once by all uploads (memory = this × part size); more uploads wait"`
	SSE            string         `envconfig:"STORAGE_AWS_SSE" desc:"server-side encryption asked for on every S3 write: AES256 (SSE-S3) or aws:kms (SSE-KMS, with the S3 Bucket Key); empty: the bucket's default"`
	Encryption     string         `envconfig:"STORAGE_ENCRYPTION" desc:"client-side encryption of everything stored: kms:<KMS key id, ARN or alias> (a KMS data key per object; AWS_ENDPOINT_URL_KMS sets KMS's endpoint) or key:<file> (a local 256-bit key, raw or base64); objects stored before stay readable; empty: none"`
	StorageClasses StorageClasses `envconfig:"STORAGE_CLASSES" default:"{}" desc:"JSON object: key prefix (artifact, mirror-meta, mirror-dist, or a path below one, such as mirror-dist/npm) → where that part is kept: bucket, storageClass (STANDARD_IA, INTELLIGENT_TIERING...), sse, sseKmsKeyId, and any key of STORAGE_AWS_ARGS; what an entry does not set comes from the default store"`
	SSEKMSKeyID    string         `envconfig:"STORAGE_AWS_SSE_KMS_KEY_ID" desc:"the KMS key (id, ARN or alias) of STORAGE_AWS_SSE=aws:kms; empty: the account's aws/s3 key"`

	StorageTimeout time.Duration `envconfig:"STORAGE_TIMEOUT" default:"5s" desc:"time to the first byte of a storage read (and no-progress limit of a body); after 3 failures in a row storage is not asked for 5s and requests fall back to the caches and the upstream"`

	MetaCacheDir   string `envconfig:"MIRROR_METADATA_CACHE_DIR" desc:"optional disk cache of metadata (empty: none)"`
	MetaCacheBytes Bytes  `envconfig:"MIRROR_METADATA_CACHE_MAX_BYTES" default:"1GiB" desc:"size limit of the metadata disk cache (least recently used files are evicted)"`
	DistCacheDir   string `envconfig:"MIRROR_DIST_CACHE_DIR" desc:"optional disk cache of files (empty: none)"`
	DistCacheBytes Bytes  `envconfig:"MIRROR_DIST_CACHE_MAX_BYTES" default:"10GiB" desc:"size limit of the file disk cache (least recently used files are evicted)"`
	MemCacheBytes  Bytes  `envconfig:"MEMORY_CACHE_MAX_BYTES" default:"256MiB" desc:"size limit of the in-memory metadata cache"`

	UpstreamOffline bool `envconfig:"UPSTREAM_OFFLINE" default:"false" desc:"never contact any upstream: serve only what storage holds (what it does not hold is a 404 that says so); for air-gapped sites filled by prefetch"`

	Cooldown string `envconfig:"COOLDOWN" desc:"default cooldown of every mirror: versions published less than this long ago are hidden (3d, 36h); empty: off"`

	UploadMaxBytes Bytes `envconfig:"UPLOAD_MAX_BYTES" default:"512MiB" desc:"largest file a hosted mirror accepts in one upload (larger: 413)"`

	AuthTokens     TokenSpecs `envconfig:"AUTH_TOKENS" desc:"JSON array of access tokens: [{\"name\",\"token\" (or \"sha256:<hex>\"),\"scopes\":[\"read\",\"write\"],\"mirrors\":[...]}]; empty: reads open, uploads refused"`
	AuthTokensFile string     `envconfig:"AUTH_TOKENS_FILE" desc:"file holding the AUTH_TOKENS JSON (a mounted secret); used when AUTH_TOKENS is empty"`

	RedisURL  string        `envconfig:"REDIS_URL" desc:"optional Redis for coordinating replicas (redis://host:6379/0); empty: none"`
	LeaseWait time.Duration `envconfig:"LEASE_WAIT" default:"60s" desc:"how long a request waits for another replica's download of the same file before a 503"`

	Mirrors             Mirrors       `envconfig:"MIRRORS" desc:"JSON array of mirrors: [{\"name\",\"type\",\"url\",\"ttl\",\"notFoundTtl\",\"auth\":[...],\"hosted\",\"public\",\"fileHosts\"}], type being one of the mirror types below; see docs/configuration.md"`
	MetadataTTL         time.Duration `envconfig:"METADATA_TTL" desc:"time metadata is served before it is revalidated upstream (default: each type's own, in the table of mirror types below)"`
	NotFoundTTL         time.Duration `envconfig:"NOT_FOUND_TTL" default:"1m" desc:"default time an upstream 404 is remembered"`
	MaxMetadataBytes    Bytes         `envconfig:"MAX_METADATA_BYTES" default:"64MiB" desc:"largest upstream metadata document accepted, after decompression (a larger one is a 502, remembered for 30s)"`
	MaxFileBytes        Bytes         `envconfig:"MAX_FILE_BYTES" default:"2GiB" desc:"largest file downloaded when the metadata gives no size (PyPI's size is enforced exactly)"`
	FinishShare         float64       `envconfig:"DOWNLOAD_FINISH_SHARE" default:"0.5" desc:"a download that every client has left is finished only when past this share of its size (0: always finish; 1.01: never)"`
	MetadataFetches     int           `envconfig:"METADATA_FETCHES" default:"16" desc:"upstream metadata fetches running at once per process (more wait)"`
	MetadataMemory      Bytes         `envconfig:"METADATA_MEMORY_BYTES" default:"256MiB" desc:"decoded metadata held at once by every upstream read together (at least twice MAX_METADATA_BYTES); more wait, and past 10 s answer 503"`
	UpstreamIdleTimeout time.Duration `envconfig:"UPSTREAM_IDLE_TIMEOUT" desc:"a file download whose body delivers nothing for this long is given up (default: UPSTREAM_TIMEOUT)"`
	OSVURL              string        `envconfig:"OSV_URL" default:"https://osv-vulnerabilities.storage.googleapis.com" desc:"where the OSV data of advisories policies is fetched from (<url>/<Ecosystem>/all.zip), by one replica at a time with Redis, when the copy in storage is older than OSV_REFRESH; empty: only what mirror-proxy osv import stores (air-gapped sites)"`
	OSVRefresh          time.Duration `envconfig:"OSV_REFRESH" default:"1h" desc:"how often the OSV data of mirrors with an advisories policy is checked for a new version in storage (mirror-proxy osv import stores it)"`
	AccessFlush         time.Duration `envconfig:"ACCESS_FLUSH_INTERVAL" default:"1m" desc:"how often a replica writes the record of the files it served (one storage write each time; mirror-proxy gc reads them)"`
	VerifyFailureTTL    time.Duration `envconfig:"VERIFY_FAILURE_TTL" default:"30s" desc:"how long a file that failed verification (digest, size, archive check) is answered 502 without being fetched again, by every replica with Redis (0: not remembered)"`
	UpstreamTimeout     time.Duration `envconfig:"UPSTREAM_TIMEOUT" default:"30s" desc:"connect and response-header timeout for upstream requests"`
	AuditPrefix         string        `envconfig:"AUDIT_PREFIX" desc:"key prefix under which the audit trail is kept (create-only <prefix>/YYYY/MM/DD/<replica>-<seq>.jsonl objects; mirror-proxy audit reads them); empty: the audit events are only logged (on stdout)"`
	AuditFlush          time.Duration `envconfig:"AUDIT_FLUSH" default:"5s" desc:"longest time an audit event waits before its batch is written to storage (and at shutdown, always)"`
	ReplicaID           string        `envconfig:"REPLICA_ID" desc:"this replica's name in the audit trail (a pod's name); default: the host name and a random suffix, so two replicas on one host never collide"`
	ShutdownTimeout     time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"60s" desc:"how long SIGTERM waits for in-flight requests and downloads"`
	DebugAddr           string        `envconfig:"DEBUG_ADDR" desc:"optional address for Go's pprof profiles (/debug/pprof/), e.g. 127.0.0.1:6060; empty: off"`
	LogLevel            string        `envconfig:"LOG_LEVEL" default:"info" desc:"debug, info, warn or error"`
	LogFormat           string        `envconfig:"LOG_FORMAT" default:"json" desc:"json or text"`
}

// DefaultMirrors is used when MIRRORS is unset.
const DefaultMirrors = `[{"name":"packagist","type":"composer","url":"https://repo.packagist.org"},{"name":"pypi","type":"pypi","url":"https://pypi.org/simple"}]`

// Bytes is a byte count written as 1048576, 512MiB, 1GiB, 10GB or 64k.
type Bytes int64

var bytesRe = regexp.MustCompile(`^(?i)\s*([0-9]+)\s*([kmgt]?)(i?b?)\s*$`)

func (b *Bytes) Decode(v string) error {
	m := bytesRe.FindStringSubmatch(v)
	if m == nil {
		return fmt.Errorf("%q is not a size (examples: 1048576, 512MiB, 10GiB)", v)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return fmt.Errorf("%q: %v", v, err)
	}
	shift := map[string]uint{"": 0, "k": 10, "m": 20, "g": 30, "t": 40}[strings.ToLower(m[2])]
	*b = Bytes(n << shift)
	return nil
}

// AWSArgs is Packeton's STORAGE_AWS_ARGS: a JSON object; "", "[]" and "{}"
// mean none. Unknown keys are an error, so that a typo is not silently
// ignored.
type AWSArgs struct {
	Endpoint             string `json:"endpoint"`
	AccessKeyID          string `json:"accessKeyId"`
	AccessKeySecret      string `json:"accessKeySecret"`
	SessionToken         string `json:"sessionToken"`
	Region               string `json:"region"`
	RoleArn              string `json:"roleArn"`
	WebIdentityTokenFile string `json:"webIdentityTokenFile"`
	RoleSessionName      string `json:"roleSessionName"`
	PathStyleEndpoint    any    `json:"pathStyleEndpoint"`
	Profile              string `json:"profile"`
}

var awsArgKeys = []string{"endpoint", "accessKeyId", "accessKeySecret", "sessionToken", "region", "roleArn",
	"webIdentityTokenFile", "roleSessionName", "pathStyleEndpoint", "profile"}

func (a *AWSArgs) Decode(v string) error {
	v = strings.TrimSpace(v)
	if v == "" || v == "[]" || v == "{}" {
		*a = AWSArgs{}
		return nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(v), &raw); err != nil {
		return fmt.Errorf("not a JSON object (%v); example: {\"endpoint\":\"http://minio:9000\",\"region\":\"us-east-1\",\"pathStyleEndpoint\":true}", err)
	}
	for k := range raw {
		known := false
		for _, ok := range awsArgKeys {
			known = known || k == ok
		}
		if !known {
			return fmt.Errorf("unknown key %q (known keys: %s)", k, strings.Join(awsArgKeys, ", "))
		}
	}
	if err := json.Unmarshal([]byte(v), a); err != nil {
		return fmt.Errorf("%v", err)
	}
	switch p := a.PathStyleEndpoint.(type) {
	case nil, bool:
	case string:
		b, err := strconv.ParseBool(p)
		if err != nil {
			return fmt.Errorf("pathStyleEndpoint: %q is not a boolean", p)
		}
		a.PathStyleEndpoint = b
	default:
		return fmt.Errorf("pathStyleEndpoint: %v is not a boolean", p)
	}
	return nil
}

// PathStyle reports whether path-style addressing was asked for.
func (a AWSArgs) PathStyle() bool { b, _ := a.PathStyleEndpoint.(bool); return b }

// Mirrors is the MIRRORS JSON array.
type Mirrors []MirrorSpec

// MirrorSpec is one mirror as users write it.
type MirrorSpec struct {
	Name        string           `json:"name"`
	Type        string           `json:"type"`
	URL         string           `json:"url"`
	TTL         string           `json:"ttl"`
	NotFoundTTL string           `json:"notFoundTtl"`
	Auth        []proxy.HostAuth `json:"auth"`
	FileHosts   []string         `json:"fileHosts"`
	Public      bool             `json:"public"`
	Hosted      bool             `json:"hosted"`
	// Cooldown policy (overrides COOLDOWN).
	Cooldown        *string  `json:"cooldown"`
	CooldownExempt  []string `json:"cooldownExempt"`
	CooldownUnknown string   `json:"cooldownUnknown"`
	// Allow (strict mode) and deny rules.
	Allow []string `json:"allow"`
	Deny  []string `json:"deny"`
	// Offline: serve only what storage holds (overrides UPSTREAM_OFFLINE).
	Offline *bool `json:"offline"`
	// Advisories: refuse versions OSV data names (npm, PyPI, Composer, CRAN so far).
	Advisories *AdvisoriesSpec `json:"advisories"`
	// Settings of one type: Go's checksum databases and the modules not
	// checked against them.
	SumDB      json.RawMessage `json:"sumdb"`
	NoSumCheck json.RawMessage `json:"noSumCheck"`
}

// options are the type's own settings of m, by MIRRORS key.
func (m MirrorSpec) options() map[string]json.RawMessage {
	o := map[string]json.RawMessage{}
	if m.SumDB != nil {
		o["sumdb"] = m.SumDB
	}
	if m.NoSumCheck != nil {
		o["noSumCheck"] = m.NoSumCheck
	}
	return o
}

// AdvisoriesSpec is a mirror's advisories policy as users write it:
// {"block": ["malware", "critical", "high"], "ignore": ["GHSA-..."], "mode": "enforce"}.
type AdvisoriesSpec struct {
	Block  []string `json:"block"`
	Ignore []string `json:"ignore"`
	Mode   string   `json:"mode"`
}

// TokenSpec is one access token as users write it.
type TokenSpec struct {
	Name    string   `json:"name"`
	Token   string   `json:"token"`
	Scopes  []string `json:"scopes"`
	Mirrors []string `json:"mirrors"`
}

// TokenSpecs is the AUTH_TOKENS JSON array.
type TokenSpecs []TokenSpec

func (ts *TokenSpecs) Decode(v string) error {
	if strings.TrimSpace(v) == "" {
		*ts = nil
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(v))
	dec.DisallowUnknownFields()
	var specs []TokenSpec
	if err := dec.Decode(&specs); err != nil {
		// The value holds secrets: the decoder's message names no value.
		return fmt.Errorf("not a JSON array of tokens (%v); example: [{\"name\":\"ci\",\"token\":\"sha256:...\",\"scopes\":[\"read\",\"write\"]}]", err)
	}
	*ts = specs
	return nil
}

func (m *Mirrors) Decode(v string) error {
	if strings.TrimSpace(v) == "" {
		v = DefaultMirrors
	}
	dec := json.NewDecoder(strings.NewReader(v))
	dec.DisallowUnknownFields()
	var specs []MirrorSpec
	if err := dec.Decode(&specs); err != nil {
		return fmt.Errorf("not a JSON array of mirrors (%v); example: %s", err, DefaultMirrors)
	}
	*m = specs
	return nil
}

var nameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Reserved names: the server's own routes and Packeton's /mirror/ prefix.
// reservedNames are the server's own routes, and "access" and "osv",
// whose metadata keys would share the access records' and the OSV data's
// (<meta prefix>/access/, <meta prefix>/osv/).
var reservedNames = map[string]bool{"healthz": true, "readyz": true, "metrics": true, "mirror": true, "api": true, "static": true, "favicon.ico": true,
	"access": true, "osv": true}

// configError names the variable and the problem in one line.
type configError struct{ Var, Msg string }

func (e configError) Error() string { return "invalid configuration: " + e.Var + ": " + e.Msg }

var bucketRe = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// secretVars may carry passwords or keys: their values are never printed.
var secretVars = map[string]bool{"MIRRORS": true, "STORAGE_AWS_ARGS": true, "STORAGE_CLASSES": true, "REDIS_URL": true, "AUTH_TOKENS": true}

var hostRe = regexp.MustCompile(`^(\*|[A-Za-z0-9]([A-Za-z0-9.-]{0,252})|\[[0-9a-fA-F:.]+\])$`)

// LoadConfig reads and validates the environment.
func LoadConfig() (*Config, error) {
	var c Config
	if err := envconfig.Process("", &c); err != nil {
		var pe *envconfig.ParseError
		if errors.As(err, &pe) {
			if secretVars[pe.KeyName] {
				// The value may hold passwords: name the problem only.
				return nil, configError{pe.KeyName, unwrapParse(pe.Err).Error()}
			}
			return nil, configError{pe.KeyName, fmt.Sprintf("%q: %v", pe.Value, unwrapParse(pe.Err))}
		}
		return nil, configError{"environment", err.Error()}
	}
	if c.Mirrors == nil {
		_ = c.Mirrors.Decode("")
	}
	if c.AuthTokens == nil && c.AuthTokensFile != "" {
		b, err := os.ReadFile(c.AuthTokensFile)
		if err != nil {
			return nil, configError{"AUTH_TOKENS_FILE", err.Error()}
		}
		if err := c.AuthTokens.Decode(string(b)); err != nil {
			return nil, configError{"AUTH_TOKENS_FILE", err.Error()}
		}
	}
	return &c, c.validate()
}

func unwrapParse(err error) error {
	var ne *strconv.NumError
	if errors.As(err, &ne) {
		return ne.Err
	}
	return err
}

func (c *Config) validate() error {
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return configError{"PUBLIC_URL", fmt.Sprintf("%q: must be http(s)://host[:port], without a path", c.PublicURL)}
		}
		c.PublicURL = strings.TrimSuffix(c.PublicURL, "/")
	}
	switch c.StorageSource {
	case "local":
		if c.StorageLocalDir == "" {
			return configError{"STORAGE_LOCAL_DIR", "empty; set a directory"}
		}
	case "s3":
		if c.Bucket == "" {
			return configError{"STORAGE_AWS_BUCKET", "required with STORAGE_SOURCE=s3"}
		}
		if !bucketRe.MatchString(c.Bucket) || strings.Contains(c.Bucket, "..") {
			return configError{"STORAGE_AWS_BUCKET", fmt.Sprintf("%q is not a valid bucket name (3 to 63 lowercase letters, digits, '.' or '-', starting and ending with a letter or digit)", c.Bucket)}
		}
		if c.AWSArgs.Endpoint != "" {
			if u, err := url.Parse(c.AWSArgs.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return configError{"STORAGE_AWS_ARGS", fmt.Sprintf("endpoint %q is not an http(s) URL", c.AWSArgs.Endpoint)}
			}
		}
	default:
		return configError{"STORAGE_SOURCE", fmt.Sprintf("%q: must be local or s3", c.StorageSource)}
	}
	for name, p := range map[string]string{"STORAGE_AWS_MIRROR_META_PREFIX": c.MetaPrefix, "STORAGE_AWS_MIRROR_DIST_PREFIX": c.DistPrefix, "STORAGE_AWS_ARTIFACT_PREFIX": c.ArtifactPrefix} {
		if p == "" || !regexp.MustCompile(`^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$`).MatchString(p) {
			return configError{name, fmt.Sprintf("%q: must be non-empty path segments of letters, digits, '_' or '-'", p)}
		}
	}
	if c.MetaPrefix == c.DistPrefix {
		return configError{"STORAGE_AWS_MIRROR_DIST_PREFIX", "must differ from STORAGE_AWS_MIRROR_META_PREFIX"}
	}
	if c.ArtifactPrefix == c.MetaPrefix || c.ArtifactPrefix == c.DistPrefix {
		return configError{"STORAGE_AWS_ARTIFACT_PREFIX", "must differ from the mirror prefixes: published packages are never mixed with mirrored ones"}
	}
	c.AuditPrefix = strings.TrimRight(c.AuditPrefix, "/")
	if c.AuditPrefix != "" {
		if !regexp.MustCompile(`^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$`).MatchString(c.AuditPrefix) {
			return configError{"AUDIT_PREFIX", fmt.Sprintf("%q: must be path segments of letters, digits, '_' or '-'", c.AuditPrefix)}
		}
		for _, p := range []string{c.MetaPrefix, c.DistPrefix, c.ArtifactPrefix} {
			if c.AuditPrefix == p || strings.HasPrefix(c.AuditPrefix+"/", p+"/") || strings.HasPrefix(p+"/", c.AuditPrefix+"/") {
				return configError{"AUDIT_PREFIX", fmt.Sprintf("%q overlaps the storage prefix %q: the trail is kept apart", c.AuditPrefix, p)}
			}
		}
	}
	if c.AuditFlush <= 0 {
		return configError{"AUDIT_FLUSH", "must be positive"}
	}
	if c.ReplicaID != "" && !regexp.MustCompile(`^[A-Za-z0-9_.-]{1,100}$`).MatchString(c.ReplicaID) {
		return configError{"REPLICA_ID", fmt.Sprintf("%q: must be 1 to 100 letters, digits, '.', '_' or '-'", c.ReplicaID)}
	}
	if c.UploadMaxBytes <= 0 {
		return configError{"UPLOAD_MAX_BYTES", "must be positive"}
	}
	switch {
	case c.SSE != "" && c.SSE != "AES256" && c.SSE != "aws:kms":
		return configError{"STORAGE_AWS_SSE", fmt.Sprintf("%q: must be AES256 or aws:kms (or empty: the bucket's default)", c.SSE)}
	case c.SSEKMSKeyID != "" && c.SSE != "aws:kms":
		return configError{"STORAGE_AWS_SSE_KMS_KEY_ID", "needs STORAGE_AWS_SSE=aws:kms"}
	case c.SSE != "" && c.StorageSource != "s3":
		return configError{"STORAGE_AWS_SSE", "needs STORAGE_SOURCE=s3 (a local directory is not encrypted by the proxy)"}
	}
	if c.Encryption != "" {
		kind, arg, _ := strings.Cut(c.Encryption, ":")
		if (kind != "kms" && kind != "key") || arg == "" {
			return configError{"STORAGE_ENCRYPTION", "must be kms:<key id> or key:<file>"}
		}
		if kind == "key" {
			if _, err := crypt.ReadKeyFile(arg); err != nil {
				return configError{"STORAGE_ENCRYPTION", err.Error()}
			}
		}
	}
	if len(c.StorageClasses) > 0 {
		if c.StorageSource != "s3" {
			return configError{"STORAGE_CLASSES", "needs STORAGE_SOURCE=s3"}
		}
		if err := c.StorageClasses.validate(c); err != nil {
			return configError{"STORAGE_CLASSES", err.Error()}
		}
	}
	if c.StorageSource == "s3" && c.PartSize < 5<<20 {
		return configError{"STORAGE_AWS_PART_SIZE", "must be at least 5MiB (an S3 limit)"}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return configError{"LOG_LEVEL", fmt.Sprintf("%q: must be debug, info, warn or error", c.LogLevel)}
	}
	if c.HTTPServer != "fast" && c.HTTPServer != "std" {
		return configError{"HTTP_SERVER", fmt.Sprintf("%q: must be fast or std", c.HTTPServer)}
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		return configError{"LOG_FORMAT", fmt.Sprintf("%q: must be json or text", c.LogFormat)}
	}
	if err := c.checkDirs(); err != nil {
		return err
	}
	if _, err := c.Tokens(); err != nil {
		return err
	}
	if c.Cooldown != "" {
		if _, err := policy.ParseDuration(c.Cooldown); err != nil {
			return configError{"COOLDOWN", err.Error()}
		}
	}
	if len(c.Mirrors) == 0 {
		return configError{"MIRRORS", "no mirror configured"}
	}
	seen := map[string]bool{}
	for i, m := range c.Mirrors {
		where := fmt.Sprintf("mirror %d (%q)", i, m.Name)
		if !nameRe.MatchString(m.Name) {
			return configError{"MIRRORS", where + ": name must be lowercase letters, digits, '-' or '_' (at most 63)"}
		}
		if reservedNames[m.Name] {
			return configError{"MIRRORS", where + ": name is reserved (the server's own routes, or its access records)"}
		}
		if seen[m.Name] {
			return configError{"MIRRORS", where + ": duplicate name"}
		}
		seen[m.Name] = true
		if !proxy.KnownType(m.Type) {
			return configError{"MIRRORS", fmt.Sprintf("%s: unknown type %q (known: %s)", where, m.Type, strings.Join(proxy.Types(), ", "))}
		}
		t, _ := mirror.Lookup(m.Type)
		if m.Hosted && !t.Hosts {
			return configError{"MIRRORS", fmt.Sprintf("%s: a %s mirror cannot host packages (\"hosted\": true is for %s)", where, m.Type, strings.Join(hostingTypes(), ", "))}
		}
		if m.URL == "" && !m.Hosted && t.DefaultURL != "" {
			m.URL = t.DefaultURL // the ecosystem's public registry
			c.Mirrors[i].URL = m.URL
		}
		u, err := url.Parse(m.URL)
		if m.URL == "" && m.Hosted {
			// A repository that only hosts: no upstream.
		} else if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			// The URL may carry a password: it is not repeated.
			return configError{"MIRRORS", fmt.Sprintf("%s: url is not an http(s) URL", where)}
		}
		for _, h := range m.FileHosts {
			if !hostRe.MatchString(h) {
				return configError{"MIRRORS", fmt.Sprintf("%s: fileHosts: %q is not a host name (no scheme, port or path; \"*\" for any public host)", where, h)}
			}
		}
		for _, d := range []string{m.TTL, m.NotFoundTTL} {
			if d != "" {
				if _, err := time.ParseDuration(d); err != nil {
					return configError{"MIRRORS", fmt.Sprintf("%s: %q is not a duration (examples: 90s, 10m)", where, d)}
				}
			}
		}
		if m.Cooldown != nil {
			if _, err := policy.ParseDuration(*m.Cooldown); err != nil {
				return configError{"MIRRORS", fmt.Sprintf("%s: cooldown: %v", where, err)}
			}
		}
		switch m.CooldownUnknown {
		case "", "allow", "deny":
		default:
			return configError{"MIRRORS", fmt.Sprintf("%s: cooldownUnknown must be allow or deny", where)}
		}
		for _, p := range m.Allow {
			if _, err := path.Match(p, ""); err != nil || p == "" {
				return configError{"MIRRORS", fmt.Sprintf("%s: allow: %q is not a name pattern", where, p)}
			}
		}
		for _, d := range m.Deny {
			if _, err := denyRule(m.Type, d); err != nil {
				return configError{"MIRRORS", fmt.Sprintf("%s: deny: %v", where, err)}
			}
		}
		if t, _ := mirror.Lookup(m.Type); t.Options != nil {
			if err := t.Options(m.options()); err != nil {
				return configError{"MIRRORS", fmt.Sprintf("%s: %v", where, err)}
			}
		} else if len(m.options()) > 0 {
			return configError{"MIRRORS", fmt.Sprintf("%s: sumdb and noSumCheck are settings of go mirrors", where)}
		}
		if a := m.Advisories; a != nil {
			if t, _ := mirror.Lookup(m.Type); t.OSVEcosystem == "" {
				return configError{"MIRRORS", fmt.Sprintf("%s: advisories are supported on npm, PyPI, Composer and CRAN mirrors so far, not on %s", where, m.Type)}
			}
			if len(a.Block) == 0 {
				return configError{"MIRRORS", fmt.Sprintf("%s: advisories: block names nothing (malware, critical, high, medium, low)", where)}
			}
			for _, b := range a.Block {
				switch b {
				case "malware", "critical", "high", "medium", "low":
				default:
					return configError{"MIRRORS", fmt.Sprintf("%s: advisories: block %q: must be malware, critical, high, medium or low", where, b)}
				}
			}
			if a.Mode != "" && a.Mode != "enforce" && a.Mode != "report" {
				return configError{"MIRRORS", fmt.Sprintf("%s: advisories: mode %q: must be enforce or report", where, a.Mode)}
			}
		}
		for _, p := range m.CooldownExempt {
			if _, err := path.Match(p, ""); err != nil || p == "" {
				return configError{"MIRRORS", fmt.Sprintf("%s: cooldownExempt: %q is not a name pattern", where, p)}
			}
		}
		for _, a := range m.Auth {
			if err := a.Validate(); err != nil {
				return configError{"MIRRORS", where + ": auth: " + err.Error()}
			}
		}
	}
	return nil
}

// checkDirs refuses directories that overlap: a cache evicts by deleting
// files, so a cache inside the local storage (or the other cache) would
// delete objects that are not its own.
func (c *Config) checkDirs() error {
	type dir struct{ name, path string }
	var dirs []dir
	if c.StorageSource == "local" {
		dirs = append(dirs, dir{"STORAGE_LOCAL_DIR", c.StorageLocalDir})
	}
	if c.MetaCacheDir != "" {
		dirs = append(dirs, dir{"MIRROR_METADATA_CACHE_DIR", c.MetaCacheDir})
	}
	if c.DistCacheDir != "" {
		dirs = append(dirs, dir{"MIRROR_DIST_CACHE_DIR", c.DistCacheDir})
	}
	for i := range dirs {
		abs, err := filepath.Abs(dirs[i].path)
		if err != nil {
			return configError{dirs[i].name, err.Error()}
		}
		if r, err := filepath.EvalSymlinks(abs); err == nil {
			abs = r
		}
		dirs[i].path = abs
	}
	within := func(a, b string) bool { // a is b or inside it
		rel, err := filepath.Rel(b, a)
		return err == nil && (rel == "." || (rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))))
	}
	for i := len(dirs) - 1; i >= 0; i-- { // caches first: the message names the cache
		for j := range dirs {
			if i != j && within(dirs[i].path, dirs[j].path) {
				return configError{dirs[i].name, fmt.Sprintf("%q is (inside) %s %q: caches delete files when they evict, so each must have a directory of its own", dirs[i].path, dirs[j].name, dirs[j].path)}
			}
		}
	}
	return nil
}

// Tokens turns the token specs into the proxy's tokens (secrets hashed).
func (c *Config) Tokens() ([]proxy.Token, error) {
	known := map[string]bool{}
	for _, m := range c.Mirrors {
		known[m.Name] = true
	}
	var out []proxy.Token
	seen := map[string]bool{}
	for i, ts := range c.AuthTokens {
		where := fmt.Sprintf("token %d (%q)", i, ts.Name)
		if ts.Name == "" || seen[ts.Name] {
			return nil, configError{"AUTH_TOKENS", where + ": each token needs a name of its own (it appears in logs, never the token)"}
		}
		seen[ts.Name] = true
		sum, err := proxy.ParseTokenSecret(ts.Token)
		if err != nil {
			return nil, configError{"AUTH_TOKENS", where + ": " + err.Error()}
		}
		t := proxy.Token{Name: ts.Name, SHA256: sum}
		for _, sc := range ts.Scopes {
			switch sc {
			case "read":
				t.Read = true
			case "write":
				t.Write = true
			default:
				return nil, configError{"AUTH_TOKENS", fmt.Sprintf("%s: unknown scope %q (read, write)", where, sc)}
			}
		}
		if !t.Read && !t.Write {
			return nil, configError{"AUTH_TOKENS", where + `: scopes must hold "read", "write" or both`}
		}
		if ts.Mirrors != nil {
			t.Mirrors = map[string]bool{}
			for _, m := range ts.Mirrors {
				if !known[m] {
					return nil, configError{"AUTH_TOKENS", fmt.Sprintf("%s: unknown mirror %q", where, m)}
				}
				t.Mirrors[m] = true
			}
		}
		out = append(out, t)
	}
	return out, nil
}

// ProxyMirrors turns the specs into the proxy's mirror definitions.
func (c *Config) ProxyMirrors() []proxy.Mirror {
	var out []proxy.Mirror
	for _, m := range c.Mirrors {
		pm := proxy.Mirror{Name: m.Name, Type: m.Type, URL: strings.TrimRight(m.URL, "/"), TTL: c.MetadataTTL, NotFoundTTL: c.NotFoundTTL, Auth: m.Auth, FileHosts: m.FileHosts, Public: m.Public, Hosted: m.Hosted}
		if pm.TTL <= 0 {
			t, _ := mirror.Lookup(m.Type)
			pm.TTL = t.DefaultTTL // each ecosystem's own default
		}
		if d, err := time.ParseDuration(m.TTL); err == nil {
			pm.TTL = d
		}
		if d, err := time.ParseDuration(m.NotFoundTTL); err == nil {
			pm.NotFoundTTL = d
		}
		pm.Offline = c.UpstreamOffline
		if m.Offline != nil {
			pm.Offline = *m.Offline
		}
		pm.Rules.Allow = m.Allow
		for _, d := range m.Deny {
			if rule, err := denyRule(m.Type, d); err == nil {
				pm.Rules.Deny = append(pm.Rules.Deny, rule)
			}
		}
		if a := m.Advisories; a != nil {
			pm.Advisories = &policy.AdvisoriesConfig{Block: a.Block, Ignore: a.Ignore, Report: a.Mode == "report"}
		}
		pm.Options = m.options()
		age := c.Cooldown
		if m.Cooldown != nil {
			age = *m.Cooldown
		}
		if age != "" {
			d, _ := policy.ParseDuration(age)
			pm.Cooldown = policy.Cooldown{Age: d, Exempt: m.CooldownExempt, AllowUnknown: m.CooldownUnknown == "allow"}
		}
		out = append(out, pm)
	}
	return out
}

// S3Config maps STORAGE_AWS_* to the S3 backend's settings.
func (c *Config) S3Config() s3store.Config {
	a := c.AWSArgs
	return s3store.Config{
		Bucket: c.Bucket, Endpoint: a.Endpoint, Region: a.Region,
		AccessKeyID: a.AccessKeyID, SecretAccessKey: a.AccessKeySecret, SessionToken: a.SessionToken,
		Profile: a.Profile, RoleARN: a.RoleArn, WebIdentityTokenFile: a.WebIdentityTokenFile,
		RoleSessionName: a.RoleSessionName, PathStyle: a.PathStyle(), PartSize: int64(c.PartSize), UploadBuffers: c.UploadBuffers,
		SSE: c.SSE, SSEKMSKeyID: c.SSEKMSKeyID,
	}
}

// hostingTypes are the types whose mirrors accept uploads.
func hostingTypes() []string {
	var out []string
	for _, n := range mirror.Types() {
		if t, _ := mirror.Lookup(n); t.Hosts {
			out = append(out, n)
		}
	}
	return out
}

// CIDRs is a comma-separated list of networks ("10.0.0.0/8, 192.168.1.7").
type CIDRs []netip.Prefix

// Decode implements envconfig.Decoder.
func (c *CIDRs) Decode(v string) error {
	*c = nil
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil {
				return fmt.Errorf("%q is not a CIDR (10.0.0.0/8) or an address", f)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		*c = append(*c, p.Masked())
	}
	return nil
}

// denyRule reads a deny rule as the mirror's type writes them (its
// Type.ParseDeny: Maven's group:artifact[:version]), else in the common
// forms of policy.ParseDeny.
func denyRule(typ, s string) (policy.Deny, error) {
	if t, ok := mirror.Lookup(typ); ok && t.ParseDeny != nil {
		return t.ParseDeny(s)
	}
	return policy.ParseDeny(s)
}
