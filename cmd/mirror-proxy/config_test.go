package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mirror-proxy/mirror-proxy/fetch"
	"github.com/mirror-proxy/mirror-proxy/proxy"
)

func TestConfigDefaults(t *testing.T) {
	for _, k := range []string{"STORAGE_SOURCE", "MIRRORS", "STORAGE_AWS_ARGS", "LISTEN_ADDR"} {
		t.Setenv(k, "")
	}
	t.Setenv("STORAGE_SOURCE", "local")
	t.Setenv("LISTEN_ADDR", ":8080")
	c, err := LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Mirrors) != 2 || c.Mirrors[0].Name != "packagist" || c.Mirrors[1].Type != "pypi" {
		t.Errorf("default mirrors: %+v", c.Mirrors)
	}
	if c.MetaPrefix != "mirror-meta" || c.DistPrefix != "mirror-dist" || c.MemCacheBytes != 256<<20 {
		t.Errorf("defaults: %+v", c)
	}
}

func TestConfigErrorsNameTheVariable(t *testing.T) {
	cases := []struct{ k, v, want string }{
		{"STORAGE_AWS_ARGS", `{"endpoint":"http://x","bogus":1}`, `STORAGE_AWS_ARGS: unknown key "bogus"`},
		{"STORAGE_SOURCE", "gcs", "STORAGE_SOURCE"},
		{"MIRRORS", `[{"name":"readyz","type":"composer","url":"http://x"}]`, "reserved"},
		{"MIRRORS", `[{"name":"a","type":"svn","url":"http://x"}]`, `unknown type "svn"`},
		{"MIRRORS", `[{"name":"a","type":"cran","hosted":true}]`, "a cran mirror cannot host packages"},
		{"MIRRORS", `[{"name":"a","type":"composer","url":"ftp://x"}]`, "not an http(s) URL"},
		{"MIRRORS", `[{"name":"A B","type":"composer","url":"http://x"}]`, "name must be"},
		{"MIRRORS", `[{"name":"a","type":"composer","url":"http://x","ttl":"soon"}]`, "not a duration"},
		{"MIRRORS", `[{"name":"a","type":"composer","url":"http://x","auth":[{"bearer":"t","username":"u"}]}]`, "exactly one"},
		{"METADATA_TTL", "5 minutes", "METADATA_TTL"},
		{"HTTP_SERVER", "nginx", "must be fast or std"},
		{"STORAGE_AWS_SSE", "aes", "must be AES256 or aws:kms"},
		{"MIRRORS", `[{"name":"osv","type":"npm","url":"http://x"}]`, "reserved"},
		{"MIRRORS", `[{"name":"a","type":"conda","url":"http://x","advisories":{"block":["malware"]}}]`, "advisories are supported on npm, PyPI, Composer and CRAN"},
		{"MIRRORS", `[{"name":"a","type":"npm","sumdb":[]}]`, "sumdb and noSumCheck are settings of go mirrors"},
		{"MIRRORS", `[{"name":"a","type":"go","sumdb":[{"key":"bad","url":"https://x"}]}]`, `sumdb: key "bad"`},
		{"MIRRORS", `[{"name":"a","type":"cran","advisories":{"block":[]}}]`, "block names nothing"},
		{"MIRRORS", `[{"name":"a","type":"npm","advisories":{"block":["severe"]}}]`, `block "severe"`},
		{"MIRRORS", `[{"name":"a","type":"pypi","url":"http://x","advisories":{"block":["malware"],"mode":"log"}}]`, `mode "log"`},
		{"STORAGE_CLASSES", `{"artifact":{"bukket":"x"}}`, `unknown key "bukket"`},
		{"STORAGE_CLASSES", `{"artifact":{"bucket":"private"}}`, "needs STORAGE_SOURCE=s3"},
		{"STORAGE_AWS_SSE_KMS_KEY_ID", "alias/mirror", "needs STORAGE_AWS_SSE=aws:kms"},
		{"PUBLIC_URL", "mirror.example.com", "PUBLIC_URL"},
		{"PUBLIC_URL", "https://mirror.example.com/sub", "without a path"},
		{"MIRROR_DIST_CACHE_MAX_BYTES", "big", "MIRROR_DIST_CACHE_MAX_BYTES"},
		{"MIRROR_DIST_CACHE_DIR", "./data", "is (inside) STORAGE_LOCAL_DIR"},
		{"MIRROR_DIST_CACHE_DIR", "./data/cache", "is (inside) STORAGE_LOCAL_DIR"},
		{"MIRROR_METADATA_CACHE_DIR", "./data/../data/meta", "is (inside) STORAGE_LOCAL_DIR"},
	}
	for _, c := range cases {
		t.Run(c.k, func(t *testing.T) {
			t.Setenv(c.k, c.v)
			_, err := LoadConfig()
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("%s=%s: got %v, want one line containing %q", c.k, c.v, err, c.want)
			}
		})
	}
	t.Run("bucket names are checked", func(t *testing.T) {
		t.Setenv("STORAGE_SOURCE", "s3")
		t.Setenv("STORAGE_AWS_BUCKET", "My_Bucket")
		if _, err := LoadConfig(); err == nil || !strings.Contains(err.Error(), "not a valid bucket name") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("s3 needs a bucket", func(t *testing.T) {
		t.Setenv("STORAGE_SOURCE", "s3")
		if _, err := LoadConfig(); err == nil || !strings.Contains(err.Error(), "STORAGE_AWS_BUCKET") {
			t.Errorf("got %v", err)
		}
	})
}

// A configuration error names the variable and the problem, never a
// password or key that the value holds.
func TestConfigErrorsNeverPrintSecrets(t *testing.T) {
	cases := []struct{ k, v string }{
		{"MIRRORS", `[{"name":"a","type":"composer","url":"http://u:hunter2@x","ttl":"soon"}]`},
		{"MIRRORS", `[{"name":"a","type":"composer","url":"ftp://u:hunter2@x"}]`},
		{"MIRRORS", `[{"name":"a","type":"composer","url":"http://x","auth":[{"password":"hunter2"}],"bogus":1}]`},
		{"MIRRORS", `not json hunter2`},
		{"STORAGE_AWS_ARGS", `{"accessKeySecret":"hunter2","bogus":1}`},
		{"STORAGE_AWS_ARGS", `{"accessKeySecret":"hunter2",`},
		{"STORAGE_AWS_ARGS", `{"accessKeySecret":"hunter2","pathStyleEndpoint":"maybe"}`},
		{"REDIS_URL", "redis://:hunter2@host:notaport/0"},
		{"AUTH_TOKENS", `[{"name":"ci","token":"hunter2hunter2hunter2","scopes":["admin"]}]`},
		{"AUTH_TOKENS", `[{"name":"ci","token":"hunter2"}]`},
		{"AUTH_TOKENS", `[{"token":"hunter2hunter2hunter2","scopes":["read"]}`},
	}
	for _, c := range cases {
		t.Run(c.k, func(t *testing.T) {
			t.Setenv(c.k, c.v)
			_, err := LoadConfig()
			if c.k == "REDIS_URL" && err == nil {
				_, err = newCoordinator(c.v)
			}
			if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), c.k) {
				t.Errorf("%s: got %v, want an error naming %s without the secret", c.k, err, c.k)
			}
		})
	}
}

// Auth entries with and without a host are accepted; a host with a path
// is not.
func TestMirrorAuthHosts(t *testing.T) {
	t.Setenv("MIRRORS", `[{"name":"a","type":"composer","url":"https://x","auth":[{"username":"u","password":"p"},{"host":"cdn.x:8443","bearer":"t"},{"host":"http://cdn2.x","bearer":"t"}],"fileHosts":["cdn.x","*"]}]`)
	if _, err := LoadConfig(); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MIRRORS", `[{"name":"a","type":"composer","url":"https://x","auth":[{"host":"cdn.x/path","bearer":"t"}]}]`)
	if _, err := LoadConfig(); err == nil || !strings.Contains(err.Error(), "auth") {
		t.Fatalf("a host with a path: %v", err)
	}
}

// Tokens come from AUTH_TOKENS or a file; secrets are kept as sha256.
func TestTokens(t *testing.T) {
	dir := t.TempDir()
	file := dir + "/tokens.json"
	os.WriteFile(file, []byte(`[{"name":"ci","token":"sha256:`+strings.Repeat("ab", 32)+`","scopes":["read","write"],"mirrors":["pypi"]}]`), 0o600)
	t.Setenv("AUTH_TOKENS_FILE", file)
	c, err := LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	toks, _ := c.Tokens()
	if len(toks) != 1 || !toks[0].Write || !toks[0].Mirrors["pypi"] || toks[0].Mirrors["packagist"] {
		t.Errorf("tokens from the file: %+v", toks)
	}
	for _, bad := range []string{
		`[{"name":"a","token":"0123456789abcdef","scopes":["read"],"mirrors":["nope"]}]`,
		`[{"name":"a","token":"0123456789abcdef","scopes":[]}]`,
		`[{"name":"a","token":"sha256:zz","scopes":["read"]}]`,
		`[{"name":"a","token":"0123456789abcdef","scopes":["read"]},{"name":"a","token":"0123456789abcdeg","scopes":["read"]}]`,
	} {
		t.Setenv("AUTH_TOKENS", bad)
		if _, err := LoadConfig(); err == nil || !strings.Contains(err.Error(), "AUTH_TOKENS") {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

func TestAWSArgsEmptyForms(t *testing.T) {
	for _, v := range []string{"", "[]", "{}", " [] "} {
		var a AWSArgs
		if err := a.Decode(v); err != nil || a != (AWSArgs{}) {
			t.Errorf("%q: %v %+v", v, err, a)
		}
	}
	var a AWSArgs
	if err := a.Decode(`{"endpoint":"http://m:9000","pathStyleEndpoint":"true","region":"auto"}`); err != nil || !a.PathStyle() || a.Region != "auto" {
		t.Errorf("got %+v %v", a, err)
	}
}

func TestBytes(t *testing.T) {
	for v, want := range map[string]int64{"1048576": 1 << 20, "512MiB": 512 << 20, "10GiB": 10 << 30, "64k": 64 << 10, "1GB": 1 << 30} {
		var b Bytes
		if err := b.Decode(v); err != nil || int64(b) != want {
			t.Errorf("%s: %d %v", v, b, err)
		}
	}
}

// An npm mirror without url takes the public registry; the types come
// from the registry of ecosystems.
func TestNpmMirrorDefaultsToThePublicRegistry(t *testing.T) {
	t.Setenv("MIRRORS", `[{"name":"npm","type":"npm"}]`)
	c, err := LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	m := c.ProxyMirrors()[0]
	if m.URL != "https://registry.npmjs.org" || m.TTL != 5*time.Minute {
		t.Errorf("npm mirror: %+v", m)
	}
}

// COOLDOWN is every mirror's default; a mirror's own cooldown wins; bad
// values name the variable.
func TestCooldownConfig(t *testing.T) {
	t.Setenv("COOLDOWN", "3d")
	t.Setenv("MIRRORS", `[{"name":"a","type":"pypi","url":"http://x"},{"name":"b","type":"npm","cooldown":"12h","cooldownExempt":["@acme/*"],"cooldownUnknown":"allow"},{"name":"c","type":"npm","cooldown":"0d"}]`)
	c, err := LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	ms := c.ProxyMirrors()
	if ms[0].Cooldown.Age != 72*time.Hour || ms[1].Cooldown.Age != 12*time.Hour || !ms[1].Cooldown.AllowUnknown ||
		len(ms[1].Cooldown.Exempt) != 1 || ms[2].Cooldown.Active("x") {
		t.Errorf("cooldowns: %+v %+v %+v", ms[0].Cooldown, ms[1].Cooldown, ms[2].Cooldown)
	}
	t.Setenv("COOLDOWN", "3 days")
	if _, err := LoadConfig(); err == nil || !strings.Contains(err.Error(), "COOLDOWN") {
		t.Errorf("bad COOLDOWN: %v", err)
	}
	t.Setenv("COOLDOWN", "")
	t.Setenv("MIRRORS", `[{"name":"a","type":"pypi","url":"http://x","cooldownUnknown":"maybe"}]`)
	if _, err := LoadConfig(); err == nil || !strings.Contains(err.Error(), "cooldownUnknown") {
		t.Errorf("bad cooldownUnknown: %v", err)
	}
}

// allow and deny are read per mirror; a bad deny rule names itself.
// A go mirror needs nothing but its type: the checksum database defaults
// to sum.golang.org.
func TestGoMirrorDefaults(t *testing.T) {
	t.Setenv("MIRRORS", `[{"name":"go","type":"go"}]`)
	c, err := LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	if m := c.ProxyMirrors()[0]; m.URL != "https://proxy.golang.org" {
		t.Errorf("go mirror: %+v", m)
	}
}

func TestRulesConfig(t *testing.T) {
	t.Setenv("MIRRORS", `[{"name":"a","type":"npm","allow":["@acme/*"],"deny":["left-pad@1.3.0","evil"]}]`)
	c, err := LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	r := c.ProxyMirrors()[0].Rules
	if len(r.Allow) != 1 || len(r.Deny) != 2 || r.Deny[0].Version != "1.3.0" || r.Deny[1].Name != "evil" {
		t.Errorf("rules: %+v", r)
	}
	t.Setenv("MIRRORS", `[{"name":"a","type":"npm","deny":["x=="]}]`)
	if _, err := LoadConfig(); err == nil || !strings.Contains(err.Error(), "deny") {
		t.Errorf("bad deny rule: %v", err)
	}
}

// The environment's defaults are the libraries' (fetch.Defaults,
// proxy.Defaults): an unset variable and a zero option mean the same.
func TestConfigDefaultsAreTheLibrariesDefaults(t *testing.T) {
	t.Setenv("STORAGE_SOURCE", "local")
	c, err := LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	f, p := fetch.Defaults, proxy.Defaults
	for _, d := range []struct {
		env       string
		got, want any
	}{
		{"MEMORY_CACHE_MAX_BYTES", int64(c.MemCacheBytes), f.MemoryCacheBytes},
		{"UPSTREAM_TIMEOUT", c.UpstreamTimeout, f.UpstreamTimeout},
		{"LEASE_WAIT", c.LeaseWait, f.LeaseWait},
		{"MAX_METADATA_BYTES", int64(c.MaxMetadataBytes), f.MaxMetadataBytes},
		{"MAX_FILE_BYTES", int64(c.MaxFileBytes), f.MaxFileBytes},
		{"VERIFY_FAILURE_TTL", c.VerifyFailureTTL, f.VerifyFailureTTL},
		{"DOWNLOAD_FINISH_SHARE", c.FinishShare, f.FinishShare},
		{"METADATA_FETCHES", c.MetadataFetches, f.MetadataFetches},
		{"METADATA_MEMORY_BYTES", int64(c.MetadataMemory), f.MetadataMemoryBytes},
		{"UPSTREAM_IDLE_TIMEOUT", c.UpstreamIdleTimeout, f.UpstreamIdleTimeout},
		{"ACCESS_FLUSH_INTERVAL", c.AccessFlush, f.AccessFlush},
		{"STORAGE_AWS_ARTIFACT_PREFIX", c.ArtifactPrefix, p.ArtifactPrefix},
		{"UPLOAD_MAX_BYTES", int64(c.UploadMaxBytes), p.UploadMaxBytes},
	} {
		if d.got != d.want {
			t.Errorf("%s defaults to %v in the environment, %v in the library", d.env, d.got, d.want)
		}
	}
}

// A STORAGE_CLASSES entry inherits what it does not set from the default
// store, and its prefix must lie below one of the three prefixes.
func TestStorageClassesInherit(t *testing.T) {
	t.Setenv("STORAGE_SOURCE", "s3")
	t.Setenv("STORAGE_AWS_BUCKET", "shared")
	t.Setenv("STORAGE_AWS_ARGS", `{"endpoint":"http://s3:9000","accessKeyId":"k","accessKeySecret":"s","pathStyleEndpoint":true}`)
	t.Setenv("STORAGE_AWS_SSE", "aws:kms")
	t.Setenv("STORAGE_AWS_SSE_KMS_KEY_ID", "alias/default")
	t.Setenv("STORAGE_CLASSES", `{"artifact":{"bucket":"private","sseKmsKeyId":"alias/private"},"mirror-dist/npm":{"storageClass":"STANDARD_IA","endpoint":"http://other:9000"}}`)
	c, err := LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	a := c.S3ConfigOf("artifact")
	if a.Bucket != "private" || a.Endpoint != "http://s3:9000" || a.AccessKeyID != "k" || !a.PathStyle || a.SSE != "aws:kms" || a.SSEKMSKeyID != "alias/private" || a.StorageClass != "" {
		t.Errorf("artifact: %+v", a)
	}
	n := c.S3ConfigOf("mirror-dist/npm")
	if n.Bucket != "shared" || n.Endpoint != "http://other:9000" || n.StorageClass != "STANDARD_IA" || n.SSEKMSKeyID != "alias/default" {
		t.Errorf("mirror-dist/npm: %+v", n)
	}
	for _, bad := range []string{`{"elsewhere":{}}`, `{"mirror-dist":{"storageClass":"CHEAP"}}`} {
		t.Setenv("STORAGE_CLASSES", bad)
		if _, err := LoadConfig(); err == nil || !strings.Contains(err.Error(), "STORAGE_CLASSES") {
			t.Errorf("%s: %v", bad, err)
		}
	}
}
