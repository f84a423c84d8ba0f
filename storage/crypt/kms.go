package crypt

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// KMS wraps data keys with an AWS KMS key: each object's data key comes
// from GenerateDataKey, and is unwrapped with Decrypt, whose answers are
// kept for a few minutes (a replica reading the same objects asks KMS
// once per object per few minutes, not per request).
type KMS struct {
	client *kms.Client
	keyID  string
	ttl    time.Duration

	mu    sync.Mutex
	cache map[string]cachedKey // by wrapped key
}

type cachedKey struct {
	key   []byte
	until time.Time
}

// maxCachedKeys bounds the unwrapped keys kept (32 bytes each).
const maxCachedKeys = 100_000

// NewKMS wraps data keys with keyID (a key id, ARN or alias) through
// client (whose endpoint the standard AWS_ENDPOINT_URL_KMS may set).
func NewKMS(client *kms.Client, keyID string) *KMS {
	return &KMS{client: client, keyID: keyID, ttl: 5 * time.Minute, cache: map[string]cachedKey{}}
}

// Kind implements Keys.
func (k *KMS) Kind() byte { return KindKMS }

// New implements Keys.
func (k *KMS) New(ctx context.Context) (key, wrapped []byte, err error) {
	out, err := k.client.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(k.keyID), KeySpec: types.DataKeySpecAes256})
	if err != nil {
		return nil, nil, fmt.Errorf("KMS GenerateDataKey with %s: %w", k.keyID, err)
	}
	if len(out.Plaintext) != 32 {
		return nil, nil, fmt.Errorf("KMS GenerateDataKey gave a %d-byte key", len(out.Plaintext))
	}
	return out.Plaintext, out.CiphertextBlob, nil
}

// Open implements Keys.
func (k *KMS) Open(ctx context.Context, wrapped []byte) ([]byte, error) {
	now := time.Now()
	k.mu.Lock()
	c, ok := k.cache[string(wrapped)]
	k.mu.Unlock()
	if ok && now.Before(c.until) {
		return c.key, nil
	}
	out, err := k.client.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: wrapped, KeyId: aws.String(k.keyID)})
	if err != nil {
		return nil, fmt.Errorf("KMS Decrypt with %s: %w", k.keyID, err)
	}
	if len(out.Plaintext) != 32 {
		return nil, fmt.Errorf("KMS Decrypt gave a %d-byte key: %w", len(out.Plaintext), ErrAuth)
	}
	k.mu.Lock()
	if len(k.cache) >= maxCachedKeys {
		clear(k.cache)
	}
	k.cache[string(wrapped)] = cachedKey{key: out.Plaintext, until: now.Add(k.ttl)}
	k.mu.Unlock()
	return out.Plaintext, nil
}
