package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// ErrUnreachable: the store did not answer at all (down, or a wrong
// endpoint), as opposed to answering with a refusal.
var ErrUnreachable = errors.New("s3 storage: cannot reach the store")

// Check verifies at startup that the bucket exists and that the credentials
// hold every permission the proxy needs, so that a misconfiguration fails
// fast with a message naming the bucket and the permission instead of
// failing on the first client request. It writes and removes one probe
// object under probePrefix.
func (s *Store) Check(ctx context.Context, probePrefix string) error {
	if _, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.bucket}); err != nil {
		switch statusOf(err) {
		case 404:
			return fmt.Errorf("s3 storage: bucket %q does not exist: create it, or fix STORAGE_AWS_BUCKET", s.bucket)
		case 403, 401:
			return fmt.Errorf("s3 storage: access to bucket %q denied (HeadBucket/ListBucket): grant s3:ListBucket or fix the credentials in STORAGE_AWS_ARGS", s.bucket)
		}
		return fmt.Errorf("%w: bucket %q: %v (check the endpoint in STORAGE_AWS_ARGS)", ErrUnreachable, s.bucket, err)
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	key := probePrefix + "/.probe-" + hex.EncodeToString(rnd[:])
	deny := func(perm string, err error) error {
		if st := statusOf(err); st == 403 || st == 401 {
			return fmt.Errorf("s3 storage: bucket %q: permission s3:%s denied: grant it to the proxy's credentials", s.bucket, perm)
		}
		return fmt.Errorf("s3 storage: bucket %q: s3:%s on the probe object %q failed: %v", s.bucket, perm, key, err)
	}
	body := []byte("mirror-proxy permission probe")
	// The probe is written as every object is: with the configured
	// server-side encryption, so that a bucket (or KMS key policy) that
	// refuses it stops startup naming the setting.
	if _, err := s.client.PutObject(ctx, s.sse.put(&s3.PutObjectInput{Bucket: &s.bucket, Key: &key,
		Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body)))})); err != nil {
		return s.denySSE(deny("PutObject", err))
	}
	// Create-only writes: a store that supports them answers 412 here. One
	// that ignores the header (or refuses it) gets best-effort create-only
	// writes (HEAD, then PUT); dists are immutable and their bytes are the
	// same whoever wins, so a race there costs an upload, not correctness.
	_, err := s.client.PutObject(ctx, s.sse.put(&s3.PutObjectInput{Bucket: &s.bucket, Key: &key, IfNoneMatch: aws.String("*"),
		Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body)))}))
	s.createOnly.Store(err != nil && (statusOf(err) == 412 || codeOf(err) == "PreconditionFailed"))
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return deny("GetObject", err)
	}
	out.Body.Close()
	if _, err := s.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &probePrefix, MaxKeys: aws.Int32(1)}); err != nil {
		return deny("ListBucket", err)
	}
	mpu, err := s.client.CreateMultipartUpload(ctx, s.sse.create(&s3.CreateMultipartUploadInput{Bucket: &s.bucket, Key: &key}))
	if err != nil {
		return s.denySSE(deny("PutObject (CreateMultipartUpload)", err))
	}
	if _, err := s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &s.bucket, Key: &key, UploadId: mpu.UploadId}); err != nil {
		return deny("AbortMultipartUpload", err)
	}
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &key}); err != nil {
		return deny("DeleteObject", err)
	}
	return nil
}

// denySSE adds to a refused write that server-side encryption was asked
// for, naming the settings.
func (s *Store) denySSE(err error) error {
	if s.sse.alg == "" {
		return err
	}
	key := ""
	if s.sse.kmsKeyID != nil {
		key = fmt.Sprintf(" with STORAGE_AWS_SSE_KMS_KEY_ID=%s", *s.sse.kmsKeyID)
	}
	return fmt.Errorf("%w (the write asked for server-side encryption STORAGE_AWS_SSE=%s%s: check that the bucket and the KMS key policy allow it)", err, s.sse.alg, key)
}

// Ping is a cheap reachability check for readiness probes.
func (s *Store) Ping(ctx context.Context) error {
	if _, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.bucket}); err != nil {
		return fmt.Errorf("s3 storage: bucket %q unreachable: %w", s.bucket, err)
	}
	return nil
}

// CreateBucket creates the bucket unless it exists; it reports whether it
// created it.
func (s *Store) CreateBucket(ctx context.Context) (bool, error) {
	if _, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.bucket}); err == nil {
		return false, nil
	} else if statusOf(err) != 404 {
		return false, fmt.Errorf("s3 storage: bucket %q: %v (check the endpoint and credentials in STORAGE_AWS_ARGS)", s.bucket, err)
	}
	in := &s3.CreateBucketInput{Bucket: &s.bucket}
	if r := s.client.Options().Region; r != "" && r != "us-east-1" && r != "auto" {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraint(r)}
	}
	if _, err := s.client.CreateBucket(ctx, in); err != nil {
		if c := codeOf(err); c == "BucketAlreadyOwnedByYou" || c == "BucketAlreadyExists" {
			return false, nil
		}
		return false, fmt.Errorf("s3 storage: create bucket %q: %w", s.bucket, err)
	}
	return true, nil
}
