// Package storage defines the object store every backend implements: the
// system of record for everything the proxy mirrors.
//
// Keys are slash-separated relative paths ("mirror-dist/packagist/a/b/1.0.0/ref.zip").
// Backends never see client input directly: callers build keys with
// [Join] or validate them with [ValidKey].
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Typed errors that every backend returns (wrapped) so callers can use errors.Is.
var (
	// ErrNotFound: the object does not exist.
	ErrNotFound = errors.New("object not found")
	// ErrExists: a create-only Put found the object already there.
	ErrExists = errors.New("object already exists")
	// ErrInvalidRange: the requested range starts beyond the object's end.
	ErrInvalidRange = errors.New("range not satisfiable")
	// ErrPreconditionFailed: a Put with IfMatch found another version of
	// the object (or none): nothing was written; read it again and retry.
	ErrPreconditionFailed = errors.New("precondition failed: the object changed")
)

// Info describes a stored object.
type Info struct {
	Key     string
	Size    int64
	ModTime time.Time
	// ETag identifies this version of the object (opaque; changes with
	// every write): what PutOptions.IfMatch names.
	ETag string
	// Digest is the PutOptions.Digest the object was written with, where
	// the backend records it ("" : none).
	Digest string
}

// Range selects bytes [Offset, Offset+Length) of an object; Length < 0 means
// "to the end". The zero Range is the whole object.
type Range struct {
	Offset int64
	Length int64
}

// Whole is the Range of an entire object.
var Whole = Range{Offset: 0, Length: -1}

// PutOptions tune a Put.
type PutOptions struct {
	// Size is the body's length when known, or -1.
	Size int64
	// CreateOnly makes the Put fail with ErrExists when the key exists
	// (If-None-Match: * on S3). Used for immutable files so that a losing
	// writer in a race can never replace a winner's object.
	CreateOnly bool
	// ContentType is recorded where the backend supports it.
	ContentType string
	// Digest ("sha256:<hex>", the algorithm as fetch.Digest names it) is
	// recorded with the object where the backend supports it (S3 user
	// metadata, an extended attribute of a local file) and returned in
	// its Info, so that reads can be verified; the caller has verified
	// the bytes against it before the write commits.
	Digest string
	// IfMatch, when set, makes the Put commit only if the object's current
	// ETag is this one (If-Match on S3), else fail with
	// ErrPreconditionFailed: indexes that several replicas update are
	// read, changed and written back under this guard, never blindly.
	// Bodies of conditional Puts must be smaller than one S3 part.
	IfMatch string
}

// Store is the object store. Implementations must be safe for concurrent use.
//
// Put reads r to its end and commits the object only when r returned io.EOF:
// any other error from r (a failed upstream, a hash mismatch) leaves nothing
// visible under key, and a reader never observes a partial object.
type Store interface {
	// Get opens the object, or the part of it that rng selects. The Info
	// always carries the size of the whole object.
	Get(ctx context.Context, key string, rng Range) (io.ReadCloser, Info, error)
	Stat(ctx context.Context, key string) (Info, error)
	Put(ctx context.Context, key string, r io.Reader, opts PutOptions) error
	Delete(ctx context.Context, key string) error
	// List calls fn for every object under prefix (a key prefix ending in
	// "/"). It is for maintenance and tests, never the request path.
	List(ctx context.Context, prefix string, fn func(Info) error) error
}

// ValidKey reports whether key is a clean relative key: non-empty segments,
// none of them "." or "..", no leading "/", no backslash or NUL.
func ValidKey(key string) error {
	if key == "" {
		return fmt.Errorf("invalid key %q: empty", key)
	}
	if strings.ContainsAny(key, "\\\x00") {
		return fmt.Errorf("invalid key %q: contains a backslash or NUL", key)
	}
	for _, seg := range strings.Split(key, "/") {
		switch seg {
		case "", ".", "..":
			return fmt.Errorf("invalid key %q: empty, '.' or '..' segment", key)
		}
		if strings.HasPrefix(seg, ".") {
			// Dot-files are reserved for backends' own bookkeeping (temp files).
			return fmt.Errorf("invalid key %q: segment %q starts with '.'", key, seg)
		}
	}
	return nil
}

// Join builds a key from segments, skipping empty ones (an empty prefix).
func Join(parts ...string) string {
	out := make([]string, 0, len(parts))
	for _, p := range parts {
		p = strings.Trim(p, "/")
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, "/")
}
