// Package s3 stores objects in an S3 bucket (AWS or any S3-compatible store)
// through aws-sdk-go-v2.
//
// Every write asks for the configured server-side encryption (SSE-S3 or
// SSE-KMS). Writes never hold a whole file in memory: a body is read one part at a
// time; a body that fits in one part is sent as a single PutObject, a larger
// one as a multipart upload that is completed only after the body returned
// io.EOF (and aborted otherwise). Create-only writes send If-None-Match: *.
package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/mirror-proxy/mirror-proxy/storage"
)

// Config selects the bucket and how to reach it. Empty fields fall back to
// the AWS SDK's default chain (AWS_* env vars, shared config and profile,
// IRSA web identity, ECS/EKS container credentials, instance metadata).
type Config struct {
	Bucket               string
	Endpoint             string
	Region               string
	AccessKeyID          string
	SecretAccessKey      string
	SessionToken         string
	Profile              string
	RoleARN              string
	WebIdentityTokenFile string
	RoleSessionName      string
	PathStyle            bool
	// PartSize is the multipart part size and the largest body sent as a
	// single PutObject (default and minimum 5 MiB).
	PartSize int64
	// UploadBuffers bounds the part buffers held at once by all uploads
	// (default 4), so memory stays bounded however many large files are
	// being stored; uploads beyond that wait for a buffer. Bodies of a
	// known size below PartSize need none.
	UploadBuffers int
	// SSE is the server-side encryption every write asks for: "" (the
	// bucket's default), "AES256" (SSE-S3) or "aws:kms" (SSE-KMS, with the
	// S3 Bucket Key on so that KMS is not asked per object).
	SSE string
	// SSEKMSKeyID is the KMS key of "aws:kms" ("" : the account's
	// aws/s3 key).
	SSEKMSKeyID string
	// StorageClass is the S3 storage class every write asks for
	// ("STANDARD_IA", "INTELLIGENT_TIERING"; "" : the bucket's default).
	StorageClass string
}

// SSE values.
const (
	SSEAES256 = "AES256"
	SSEKMS    = "aws:kms"
)

// sse is the server-side encryption (and the storage class) a write asks
// for.
type sse struct {
	alg       types.ServerSideEncryption
	kmsKeyID  *string
	bucketKey *bool
	class     types.StorageClass
}

// StorageClasses are the S3 storage classes a Config may name.
func StorageClasses() []string {
	var out []string
	for _, v := range types.StorageClass("").Values() {
		out = append(out, string(v))
	}
	return out
}

func newSSE(c Config) (sse, error) {
	e, err := newEncryption(c)
	if c.StorageClass != "" {
		known := false
		for _, v := range StorageClasses() {
			known = known || v == c.StorageClass
		}
		if !known {
			return sse{}, fmt.Errorf("s3 storage: storage class %q: must be one of %s", c.StorageClass, strings.Join(StorageClasses(), ", "))
		}
		e.class = types.StorageClass(c.StorageClass)
	}
	return e, err
}

func newEncryption(c Config) (sse, error) {
	switch c.SSE {
	case "":
		if c.SSEKMSKeyID != "" {
			return sse{}, errors.New("s3 storage: a KMS key id is set (STORAGE_AWS_SSE_KMS_KEY_ID) but STORAGE_AWS_SSE is not aws:kms")
		}
		return sse{}, nil
	case SSEAES256:
		if c.SSEKMSKeyID != "" {
			return sse{}, errors.New("s3 storage: STORAGE_AWS_SSE_KMS_KEY_ID needs STORAGE_AWS_SSE=aws:kms")
		}
		return sse{alg: types.ServerSideEncryptionAes256}, nil
	case SSEKMS:
		e := sse{alg: types.ServerSideEncryptionAwsKms, bucketKey: aws.Bool(true)}
		if c.SSEKMSKeyID != "" {
			e.kmsKeyID = aws.String(c.SSEKMSKeyID)
		}
		return e, nil
	}
	return sse{}, fmt.Errorf("s3 storage: STORAGE_AWS_SSE %q: must be AES256 or aws:kms", c.SSE)
}

// put sets the encryption of a PutObject.
func (e sse) put(in *s3.PutObjectInput) *s3.PutObjectInput {
	in.ServerSideEncryption, in.SSEKMSKeyId, in.BucketKeyEnabled = e.alg, e.kmsKeyID, e.bucketKey
	in.StorageClass = e.class
	return in
}

// create sets the encryption of a CreateMultipartUpload.
func (e sse) create(in *s3.CreateMultipartUploadInput) *s3.CreateMultipartUploadInput {
	in.ServerSideEncryption, in.SSEKMSKeyId, in.BucketKeyEnabled = e.alg, e.kmsKeyID, e.bucketKey
	in.StorageClass = e.class
	return in
}

const minPartSize = 5 << 20

// Store is an S3-backed storage.Store.
type Store struct {
	client *s3.Client
	bucket string
	pool   sync.Pool
	sem    chan struct{}
	part   int64
	// createOnly: the store honours If-None-Match: * (see Check).
	createOnly atomic.Bool
	sse        sse
}

var _ storage.Store = (*Store)(nil)

// New builds the client. It does not contact the store; call Check for that.
func New(ctx context.Context, c Config) (*Store, error) {
	if c.Bucket == "" {
		return nil, errors.New("s3 storage: no bucket: set STORAGE_AWS_BUCKET")
	}
	enc, err := newSSE(c)
	if err != nil {
		return nil, err
	}
	cfg, err := AWSConfig(ctx, c)
	if err != nil {
		return nil, err
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if c.Endpoint != "" {
			o.BaseEndpoint = aws.String(c.Endpoint)
		}
		o.UsePathStyle = c.PathStyle
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	part := c.PartSize
	if part < minPartSize {
		part = minPartSize
	}
	nbuf := c.UploadBuffers
	if nbuf <= 0 {
		nbuf = 4
	}
	s := &Store{client: client, bucket: c.Bucket, part: part, sem: make(chan struct{}, nbuf), sse: enc}
	s.pool.New = func() any { b := make([]byte, part); return &b }
	s.createOnly.Store(true) // until Check finds otherwise
	return s, nil
}

// AWSConfig is the AWS SDK configuration of c: its region and credentials
// (static keys, a profile, an assumed role or web identity, else the
// SDK's default chain). The KMS client of client-side encryption uses it
// too.
func AWSConfig(ctx context.Context, c Config) (aws.Config, error) {
	opts := []func(*config.LoadOptions) error{
		// S3-compatible stores (R2, B2, Hetzner, OVH, GCS interop, older MinIO)
		// reject or mis-store the SDK's default aws-chunked trailing checksums.
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
	}
	if c.Region != "" {
		opts = append(opts, config.WithRegion(c.Region))
	}
	if c.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(c.Profile))
	}
	if c.AccessKeyID != "" || c.SecretAccessKey != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, c.SessionToken)))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("s3 storage: load AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if c.RoleARN != "" && c.AccessKeyID == "" {
		// The STS client keeps the SDK's own endpoint: a custom S3 endpoint
		// must never redirect STS (that breaks IRSA and assume-role on AWS).
		stsClient := sts.NewFromConfig(cfg)
		if c.WebIdentityTokenFile != "" {
			cfg.Credentials = aws.NewCredentialsCache(stscreds.NewWebIdentityRoleProvider(
				stsClient, c.RoleARN, stscreds.IdentityTokenFile(c.WebIdentityTokenFile),
				func(o *stscreds.WebIdentityRoleOptions) {
					if c.RoleSessionName != "" {
						o.RoleSessionName = c.RoleSessionName
					}
				}))
		} else {
			cfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(stsClient, c.RoleARN,
				func(o *stscreds.AssumeRoleOptions) {
					if c.RoleSessionName != "" {
						o.RoleSessionName = c.RoleSessionName
					}
				}))
		}
	}
	return cfg, nil
}

// Bucket is the bucket's name.
func (s *Store) Bucket() string { return s.bucket }

func statusOf(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func codeOf(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func (s *Store) wrap(op, key string, err error) error {
	switch code, status := codeOf(err), statusOf(err); {
	case code == "NoSuchKey" || code == "NotFound" || status == 404:
		return fmt.Errorf("s3 %s %s/%s: %w", op, s.bucket, key, storage.ErrNotFound)
	case code == "PreconditionFailed" || status == 412 || code == "ConditionalRequestConflict":
		return fmt.Errorf("s3 %s %s/%s: %w", op, s.bucket, key, storage.ErrExists)
	case code == "InvalidRange" || status == 416:
		return fmt.Errorf("s3 %s %s/%s: %w", op, s.bucket, key, storage.ErrInvalidRange)
	}
	return fmt.Errorf("s3 %s %s/%s: %w", op, s.bucket, key, err)
}

func (s *Store) Stat(ctx context.Context, key string) (storage.Info, error) {
	if err := storage.ValidKey(key); err != nil {
		return storage.Info{}, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return storage.Info{}, s.wrap("HeadObject", key, err)
	}
	return storage.Info{Key: key, Size: aws.ToInt64(out.ContentLength), ModTime: aws.ToTime(out.LastModified), ETag: aws.ToString(out.ETag),
		Digest: out.Metadata[digestMeta]}, nil
}

// digestMeta is the user metadata (x-amz-meta-digest) that keeps an
// object's PutOptions.Digest.
const digestMeta = "digest"

func (s *Store) Get(ctx context.Context, key string, rng storage.Range) (io.ReadCloser, storage.Info, error) {
	if err := storage.ValidKey(key); err != nil {
		return nil, storage.Info{}, err
	}
	in := &s3.GetObjectInput{Bucket: &s.bucket, Key: &key}
	ranged := rng.Offset != 0 || rng.Length >= 0
	if ranged {
		if rng.Length == 0 {
			// A zero-length read: stat for the size, return no bytes.
			info, err := s.Stat(ctx, key)
			if err != nil {
				return nil, info, err
			}
			if rng.Offset > info.Size {
				return nil, info, fmt.Errorf("s3 GetObject %s/%s: %w", s.bucket, key, storage.ErrInvalidRange)
			}
			return io.NopCloser(strings.NewReader("")), info, nil
		}
		r := "bytes=" + strconv.FormatInt(rng.Offset, 10) + "-"
		if rng.Length > 0 {
			r += strconv.FormatInt(rng.Offset+rng.Length-1, 10)
		}
		in.Range = &r
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		return nil, storage.Info{}, s.wrap("GetObject", key, err)
	}
	info := storage.Info{Key: key, Size: aws.ToInt64(out.ContentLength), ModTime: aws.ToTime(out.LastModified), ETag: aws.ToString(out.ETag),
		Digest: out.Metadata[digestMeta]}
	if cr := aws.ToString(out.ContentRange); cr != "" {
		// "bytes a-b/total"
		if i := strings.LastIndexByte(cr, '/'); i >= 0 {
			if total, err := strconv.ParseInt(cr[i+1:], 10, 64); err == nil {
				info.Size = total
			}
		}
	} else if ranged && rng.Offset > 0 {
		out.Body.Close()
		return nil, info, fmt.Errorf("s3 GetObject %s/%s: store ignored the Range header", s.bucket, key)
	}
	return out.Body, info, nil
}

func (s *Store) Put(ctx context.Context, key string, r io.Reader, opts storage.PutOptions) error {
	if err := storage.ValidKey(key); err != nil {
		return err
	}
	if opts.Size >= 0 && opts.Size < s.part {
		// Small and of known size: read it exactly, no pooled buffer.
		buf := make([]byte, opts.Size+1)
		n, err := io.ReadFull(r, buf)
		switch {
		case err == nil:
			return fmt.Errorf("s3 PutObject %s/%s: body longer than its declared %d bytes", s.bucket, key, opts.Size)
		case err != io.EOF && err != io.ErrUnexpectedEOF:
			return fmt.Errorf("s3 PutObject %s/%s: read body: %w", s.bucket, key, err)
		case int64(n) != opts.Size:
			return fmt.Errorf("s3 PutObject %s/%s: body has %d of its declared %d bytes", s.bucket, key, n, opts.Size)
		}
		return s.putSingle(ctx, key, buf[:n], opts)
	}
	select {
	case s.sem <- struct{}{}:
		defer func() { <-s.sem }()
	case <-ctx.Done():
		return fmt.Errorf("s3 PutObject %s/%s: waiting for an upload buffer: %w", s.bucket, key, ctx.Err())
	}
	bp := s.pool.Get().(*[]byte)
	defer s.pool.Put(bp)
	buf := *bp
	n, err := io.ReadFull(r, buf)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return fmt.Errorf("s3 PutObject %s/%s: read body: %w", s.bucket, key, err)
	}
	if err != nil { // the whole body fits in one part
		return s.putSingle(ctx, key, buf[:n], opts)
	}
	return s.putMultipart(ctx, key, r, buf, opts)
}

func (s *Store) putSingle(ctx context.Context, key string, body []byte, opts storage.PutOptions) error {
	in := &s3.PutObjectInput{
		Bucket:        &s.bucket,
		Key:           &key,
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
	}
	if opts.ContentType != "" {
		in.ContentType = &opts.ContentType
	}
	if opts.Digest != "" {
		in.Metadata = map[string]string{digestMeta: opts.Digest}
	}
	if opts.CreateOnly {
		if !s.createOnly.Load() {
			if _, err := s.Stat(ctx, key); err == nil {
				return fmt.Errorf("s3 PutObject %s/%s: %w", s.bucket, key, storage.ErrExists)
			}
		} else {
			in.IfNoneMatch = aws.String("*")
		}
	}
	if opts.IfMatch != "" {
		in.IfMatch = aws.String(opts.IfMatch)
	}
	if _, err := s.client.PutObject(ctx, s.sse.put(in)); err != nil {
		if opts.IfMatch != "" {
			// 412 (another version), 409 (a racing write) or 404 (none).
			switch code, status := codeOf(err), statusOf(err); {
			case status == 412 || status == 409 || status == 404 || code == "PreconditionFailed" ||
				code == "ConditionalRequestConflict" || code == "NoSuchKey":
				return fmt.Errorf("s3 PutObject %s/%s: %w", s.bucket, key, storage.ErrPreconditionFailed)
			}
		}
		return s.wrap("PutObject", key, err)
	}
	return nil
}

func (s *Store) putMultipart(ctx context.Context, key string, r io.Reader, first []byte, opts storage.PutOptions) (err error) {
	if opts.IfMatch != "" {
		return fmt.Errorf("s3 PutObject %s/%s: a conditional write must fit in one part (%d bytes)", s.bucket, key, s.part)
	}
	if opts.CreateOnly {
		// The condition is only checked at completion; skip the upload when
		// the object is plainly there already.
		if _, err := s.Stat(ctx, key); err == nil {
			return fmt.Errorf("s3 PutObject %s/%s: %w", s.bucket, key, storage.ErrExists)
		}
	}
	cin := &s3.CreateMultipartUploadInput{Bucket: &s.bucket, Key: &key}
	if opts.ContentType != "" {
		cin.ContentType = &opts.ContentType
	}
	if opts.Digest != "" {
		cin.Metadata = map[string]string{digestMeta: opts.Digest}
	}
	created, err := s.client.CreateMultipartUpload(ctx, s.sse.create(cin))
	if err != nil {
		return s.wrap("CreateMultipartUpload", key, err)
	}
	uploadID := created.UploadId
	defer func() {
		if err != nil {
			// Detached: the caller's context may be the reason we are aborting.
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			_, _ = s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{Bucket: &s.bucket, Key: &key, UploadId: uploadID})
		}
	}()
	var parts []types.CompletedPart
	buf := first
	n := len(first)
	for num := int32(1); ; num++ {
		if n > 0 {
			out, err := s.client.UploadPart(ctx, &s3.UploadPartInput{
				Bucket: &s.bucket, Key: &key, UploadId: uploadID, PartNumber: aws.Int32(num),
				Body: bytes.NewReader(buf[:n]), ContentLength: aws.Int64(int64(n)),
			})
			if err != nil {
				return s.wrap("UploadPart", key, err)
			}
			parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num)})
		}
		if num >= 10000 {
			return fmt.Errorf("s3 PutObject %s/%s: body exceeds 10,000 parts of %d bytes", s.bucket, key, len(buf))
		}
		var rerr error
		n, rerr = io.ReadFull(r, buf)
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			if n > 0 {
				continue // upload the last, short part, then see EOF again
			}
			break
		}
		if rerr != nil {
			return fmt.Errorf("s3 PutObject %s/%s: read body: %w", s.bucket, key, rerr)
		}
	}
	in := &s3.CompleteMultipartUploadInput{
		Bucket: &s.bucket, Key: &key, UploadId: uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	}
	if opts.CreateOnly && s.createOnly.Load() {
		in.IfNoneMatch = aws.String("*")
	}
	if _, err = s.client.CompleteMultipartUpload(ctx, in); err != nil {
		return s.wrap("CompleteMultipartUpload", key, err)
	}
	return nil
}

func (s *Store) Delete(ctx context.Context, key string) error {
	if err := storage.ValidKey(key); err != nil {
		return err
	}
	// S3's DeleteObject succeeds on a missing key; report it like the other backends.
	if _, err := s.Stat(ctx, key); err != nil {
		return err
	}
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &key}); err != nil {
		return s.wrap("DeleteObject", key, err)
	}
	return nil
}

func (s *Store) List(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	p := strings.TrimPrefix(prefix, "/")
	pages := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &p})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return s.wrap("ListObjectsV2", p, err)
		}
		for _, o := range page.Contents {
			k := aws.ToString(o.Key)
			if storage.ValidKey(k) != nil {
				continue // not ours (probe objects, foreign keys)
			}
			if err := fn(storage.Info{Key: k, Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified)}); err != nil {
				return err
			}
		}
	}
	return nil
}
