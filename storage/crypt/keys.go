package crypt

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
)

// Kinds of data key wrapping, as recorded in object headers.
const (
	KindLocal byte = 1 // a local 256-bit key (STORAGE_ENCRYPTION=key:<file>)
	KindKMS   byte = 2 // AWS KMS (STORAGE_ENCRYPTION=kms:<key id>)
)

// LocalKey wraps data keys with one 256-bit key held by the operator, for
// sites without KMS.
type LocalKey struct{ key []byte }

// ReadKeyFile reads a key file: 32 bytes, raw or base64 (with or without
// a trailing newline).
func ReadKeyFile(path string) (*LocalKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	if len(b) == 32 {
		return &LocalKey{key: b}, nil
	}
	t := bytes.TrimSpace(b)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(string(t)); err == nil && len(k) == 32 {
			return &LocalKey{key: k}, nil
		}
	}
	return nil, fmt.Errorf("key file %s: not 32 bytes, raw or base64 (make one with: head -c 32 /dev/urandom | base64)", path)
}

// NewLocalKey is a LocalKey of key (32 bytes).
func NewLocalKey(key []byte) (*LocalKey, error) {
	if len(key) != 32 {
		return nil, errors.New("a local key is 32 bytes")
	}
	return &LocalKey{key: bytes.Clone(key)}, nil
}

// Kind implements Keys.
func (k *LocalKey) Kind() byte { return KindLocal }

// New implements Keys: a random data key, sealed with the local key.
func (k *LocalKey) New(ctx context.Context) (key, wrapped []byte, err error) {
	key = make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, nil, err
	}
	aead, err := newGCM(k.key)
	if err != nil {
		return nil, nil, err
	}
	n := make([]byte, aead.NonceSize())
	if _, err := rand.Read(n); err != nil {
		return nil, nil, err
	}
	return key, aead.Seal(n, n, key, []byte("mirror-proxy data key")), nil
}

// Open implements Keys.
func (k *LocalKey) Open(ctx context.Context, wrapped []byte) ([]byte, error) {
	aead, err := newGCM(k.key)
	if err != nil {
		return nil, err
	}
	if len(wrapped) < aead.NonceSize() {
		return nil, ErrAuth
	}
	key, err := aead.Open(nil, wrapped[:aead.NonceSize()], wrapped[aead.NonceSize():], []byte("mirror-proxy data key"))
	if err != nil {
		return nil, fmt.Errorf("not this key's (another STORAGE_ENCRYPTION key wrote it?): %w", ErrAuth)
	}
	return key, nil
}
