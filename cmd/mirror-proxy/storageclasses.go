package main

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"

	s3store "github.com/mirror-proxy/mirror-proxy/storage/s3"
)

// StorageClasses is STORAGE_CLASSES: a JSON object from a key prefix
// ("artifact", "mirror-dist", "mirror-dist/npm") to where that part of
// the key space is kept. Each entry inherits every setting of the default
// store (STORAGE_AWS_BUCKET, STORAGE_AWS_ARGS, STORAGE_AWS_SSE...) that
// it does not set, so {"mirror-dist": {"storageClass": "STANDARD_IA"}}
// keeps mirrored files in the same bucket, in a cheaper class. Unknown keys
// are an error.
type StorageClasses map[string]StorageClass

// StorageClass is one entry of STORAGE_CLASSES.
type StorageClass struct {
	Bucket       string
	StorageClass string
	SSE          string
	SSEKMSKeyID  string
	AWSArgs      AWSArgs // the keys of STORAGE_AWS_ARGS it sets
	set          map[string]bool
}

var storageClassKeys = []string{"bucket", "storageClass", "sse", "sseKmsKeyId"}

// Decode implements envconfig.Decoder.
func (sc *StorageClasses) Decode(v string) error {
	v = strings.TrimSpace(v)
	*sc = StorageClasses{}
	if v == "" || v == "{}" {
		return nil
	}
	var raw map[string]map[string]json.RawMessage
	if err := json.Unmarshal([]byte(v), &raw); err != nil {
		return fmt.Errorf(`not a JSON object of objects (%v); example: {"artifact":{"bucket":"private","storageClass":"STANDARD_IA"}}`, err)
	}
	for prefix, fields := range raw {
		var c StorageClass
		c.set = map[string]bool{}
		aws := map[string]json.RawMessage{}
		for k, val := range fields {
			c.set[k] = true
			var dst *string
			switch k {
			case "bucket":
				dst = &c.Bucket
			case "storageClass":
				dst = &c.StorageClass
			case "sse":
				dst = &c.SSE
			case "sseKmsKeyId":
				dst = &c.SSEKMSKeyID
			default:
				known := false
				for _, ok := range awsArgKeys {
					known = known || k == ok
				}
				if !known {
					return fmt.Errorf("%q: unknown key %q (known keys: %s, %s)", prefix, k,
						strings.Join(storageClassKeys, ", "), strings.Join(awsArgKeys, ", "))
				}
				aws[k] = val
				continue
			}
			if err := json.Unmarshal(val, dst); err != nil {
				return fmt.Errorf("%q: %s: not a string", prefix, k)
			}
		}
		b, _ := json.Marshal(aws)
		if err := c.AWSArgs.Decode(string(b)); err != nil {
			return fmt.Errorf("%q: %v", prefix, err)
		}
		(*sc)[prefix] = c
	}
	return nil
}

var prefixRe = regexp.MustCompile(`^[A-Za-z0-9_-]+(/[A-Za-z0-9_.@-]+)*$`)

// validate checks each entry's prefix (below the metadata, file or
// published prefix) and values.
func (sc StorageClasses) validate(c *Config) error {
	for _, prefix := range sc.prefixes() {
		e := sc[prefix]
		first, _, _ := strings.Cut(prefix, "/")
		if !prefixRe.MatchString(prefix) || (first != c.MetaPrefix && first != c.DistPrefix && first != c.ArtifactPrefix) {
			return fmt.Errorf("%q: a prefix must be %s, %s or %s, or a path below one of them (\"%s/npm\")",
				prefix, c.MetaPrefix, c.DistPrefix, c.ArtifactPrefix, c.DistPrefix)
		}
		if e.Bucket != "" && !bucketRe.MatchString(e.Bucket) {
			return fmt.Errorf("%q: bucket %q is not a valid bucket name", prefix, e.Bucket)
		}
		if e.SSE != "" && e.SSE != "AES256" && e.SSE != "aws:kms" {
			return fmt.Errorf("%q: sse %q: must be AES256 or aws:kms", prefix, e.SSE)
		}
		if e.StorageClass != "" {
			known := false
			for _, v := range s3store.StorageClasses() {
				known = known || v == e.StorageClass
			}
			if !known {
				return fmt.Errorf("%q: storageClass %q: must be one of %s", prefix, e.StorageClass, strings.Join(s3store.StorageClasses(), ", "))
			}
		}
	}
	return nil
}

func (sc StorageClasses) prefixes() []string {
	var out []string
	for p := range sc {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// S3ConfigOf is the default store's settings with what the entry of
// prefix overrides.
func (c *Config) S3ConfigOf(prefix string) s3store.Config {
	base := c.S3Config()
	e := c.StorageClasses[prefix]
	if e.Bucket != "" {
		base.Bucket = e.Bucket
	}
	if e.set["storageClass"] {
		base.StorageClass = e.StorageClass
	}
	if e.set["sse"] {
		base.SSE = e.SSE
		if !e.set["sseKmsKeyId"] {
			base.SSEKMSKeyID = ""
		}
	}
	if e.set["sseKmsKeyId"] {
		base.SSEKMSKeyID = e.SSEKMSKeyID
	}
	a := e.AWSArgs
	for k, dst := range map[string]*string{"endpoint": &base.Endpoint, "region": &base.Region, "accessKeyId": &base.AccessKeyID,
		"accessKeySecret": &base.SecretAccessKey, "sessionToken": &base.SessionToken, "profile": &base.Profile,
		"roleArn": &base.RoleARN, "webIdentityTokenFile": &base.WebIdentityTokenFile, "roleSessionName": &base.RoleSessionName} {
		if !e.set[k] {
			continue
		}
		*dst = map[string]string{"endpoint": a.Endpoint, "region": a.Region, "accessKeyId": a.AccessKeyID,
			"accessKeySecret": a.AccessKeySecret, "sessionToken": a.SessionToken, "profile": a.Profile, "roleArn": a.RoleArn,
			"webIdentityTokenFile": a.WebIdentityTokenFile, "roleSessionName": a.RoleSessionName}[k]
	}
	if e.set["pathStyleEndpoint"] {
		base.PathStyle = a.PathStyle()
	}
	return base
}
