// Package local stores objects as files under a directory: the embedded
// default backend. Writes go to a temp file in <dir>/.tmp and are renamed
// (or hard-linked, for create-only writes) into place, so a reader never
// sees a partial file.
package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/mirror-proxy/mirror-proxy/storage"
)

// Store is a directory-backed storage.Store.
type Store struct {
	root string
	tmp  string
}

var _ storage.Store = (*Store)(nil)

// New opens (creating if needed) a store rooted at dir.
func New(dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("local storage: resolve %q: %w", dir, err)
	}
	s := &Store{root: abs, tmp: filepath.Join(abs, ".tmp")}
	if err := os.MkdirAll(s.tmp, 0o755); err != nil {
		return nil, fmt.Errorf("local storage: create %q (check STORAGE_LOCAL_DIR and its permissions): %w", s.tmp, err)
	}
	// Temp files left by a killed process are never visible as objects;
	// clear them so they do not accumulate.
	if entries, err := os.ReadDir(s.tmp); err == nil {
		for _, e := range entries {
			_ = os.Remove(filepath.Join(s.tmp, e.Name()))
		}
	}
	return s, nil
}

// Dir is the store's root directory.
func (s *Store) Dir() string { return s.root }

func (s *Store) path(key string) (string, error) {
	if err := storage.ValidKey(key); err != nil {
		return "", err
	}
	return filepath.Join(s.root, filepath.FromSlash(key)), nil
}

func notFound(key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrInvalid) || isNotDir(err) {
		return fmt.Errorf("local storage: %s: %w", key, storage.ErrNotFound)
	}
	return fmt.Errorf("local storage: %s: %w", key, err)
}

func isNotDir(err error) bool {
	var pe *fs.PathError
	return errors.As(err, &pe) && strings.Contains(pe.Err.Error(), "not a directory")
}

func (s *Store) Stat(ctx context.Context, key string) (storage.Info, error) {
	p, err := s.path(key)
	if err != nil {
		return storage.Info{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return storage.Info{}, notFound(key, err)
	}
	if fi.IsDir() {
		return storage.Info{}, fmt.Errorf("local storage: %s: %w", key, storage.ErrNotFound)
	}
	info := infoOf(key, fi)
	info.Digest = digestOf(p)
	return info, nil
}

// infoOf describes a stored file. Its ETag is made of the inode, size and
// modification time: every write renames a new file into place, so every
// version has a new one.
func infoOf(key string, fi fs.FileInfo) storage.Info {
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = uint64(st.Ino)
	}
	return storage.Info{Key: key, Size: fi.Size(), ModTime: fi.ModTime(),
		ETag: fmt.Sprintf(`"%x-%x-%x"`, ino, fi.Size(), fi.ModTime().UnixNano())}
}

type section struct {
	io.Reader
	io.Closer
}

func (s *Store) Get(ctx context.Context, key string, rng storage.Range) (io.ReadCloser, storage.Info, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, storage.Info{}, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, storage.Info{}, notFound(key, err)
	}
	fi, err := f.Stat()
	if err != nil || fi.IsDir() {
		f.Close()
		return nil, storage.Info{}, fmt.Errorf("local storage: %s: %w", key, storage.ErrNotFound)
	}
	info := infoOf(key, fi)
	info.Digest = digestOfFile(f)
	if rng.Offset == 0 && rng.Length < 0 {
		return f, info, nil
	}
	if rng.Offset < 0 || rng.Offset >= info.Size && !(rng.Offset == 0 && info.Size == 0) {
		f.Close()
		return nil, info, fmt.Errorf("local storage: %s offset %d of %d: %w", key, rng.Offset, info.Size, storage.ErrInvalidRange)
	}
	n := info.Size - rng.Offset
	if rng.Length >= 0 && rng.Length < n {
		n = rng.Length
	}
	return section{Reader: io.NewSectionReader(f, rng.Offset, n), Closer: f}, info, nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func (s *Store) Put(ctx context.Context, key string, r io.Reader, opts storage.PutOptions) (err error) {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if opts.CreateOnly {
		if _, err := os.Stat(p); err == nil {
			return fmt.Errorf("local storage: %s: %w", key, storage.ErrExists)
		}
	}
	tmp, err := os.CreateTemp(s.tmp, "put-*")
	if err != nil {
		return fmt.Errorf("local storage: create temp file for %s: %w", key, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = io.Copy(tmp, ctxReader{ctx, r}); err != nil {
		return fmt.Errorf("local storage: write %s: %w", key, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("local storage: sync %s: %w", key, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("local storage: close %s: %w", key, err)
	}
	setDigest(tmp.Name(), opts.Digest) // the inode keeps it through link and rename
	if err = os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("local storage: create directory for %s: %w", key, err)
	}
	if opts.CreateOnly {
		// link(2) fails if the target exists: an atomic create-only commit.
		if err = os.Link(tmp.Name(), p); err != nil {
			if errors.Is(err, fs.ErrExist) {
				err = fmt.Errorf("local storage: %s: %w", key, storage.ErrExists)
				return err
			}
			return fmt.Errorf("local storage: commit %s: %w", key, err)
		}
		os.Remove(tmp.Name())
		return nil
	}
	if opts.IfMatch != "" {
		// Compare and swap under an exclusive lock of the key, which every
		// process on this directory takes for conditional writes.
		unlock, err := s.lock(key)
		if err != nil {
			return err
		}
		defer unlock()
		cur, err := s.Stat(ctx, key)
		if err != nil || cur.ETag != opts.IfMatch {
			err = fmt.Errorf("local storage: %s: %w", key, storage.ErrPreconditionFailed)
			return err
		}
	}
	if err = os.Rename(tmp.Name(), p); err != nil {
		return fmt.Errorf("local storage: commit %s: %w", key, err)
	}
	return nil
}

// lock takes an exclusive flock(2) on a lock file of key in <dir>/.locks
// (named by the key's hash, so no key escapes it; never cleared, so that
// every process locks the same file).
func (s *Store) lock(key string) (func(), error) {
	sum := sha256.Sum256([]byte(key))
	dir := filepath.Join(s.root, ".locks")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("local storage: lock %s: %w", key, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, hex.EncodeToString(sum[:12])), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("local storage: lock %s: %w", key, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("local storage: lock %s: %w", key, err)
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

func (s *Store) Delete(ctx context.Context, key string) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return notFound(key, err)
	}
	if fi.IsDir() {
		return fmt.Errorf("local storage: %s: %w", key, storage.ErrNotFound)
	}
	if err := os.Remove(p); err != nil {
		return notFound(key, err)
	}
	// Prune now-empty parent directories, up to the root.
	for dir := filepath.Dir(p); dir != s.root && strings.HasPrefix(dir, s.root); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil {
			break
		}
	}
	return nil
}

func (s *Store) List(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	start := s.root
	if p := strings.Trim(prefix, "/"); p != "" {
		if err := storage.ValidKey(p); err != nil {
			return err
		}
		start = filepath.Join(s.root, filepath.FromSlash(p))
	}
	err := filepath.WalkDir(start, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".") && path != start {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(s.root, path)
		return fn(storage.Info{Key: filepath.ToSlash(rel), Size: fi.Size(), ModTime: fi.ModTime()})
	})
	if err != nil {
		return fmt.Errorf("local storage: list %q: %w", prefix, err)
	}
	return nil
}
