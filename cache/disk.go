package cache

import (
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/mirror-proxy/mirror-proxy/storage"
)

// Disk is an ephemeral cache of objects as files under a directory, bounded
// in bytes, evicting the least recently used files. Files are written to a
// temp file and renamed in, so a reader never sees a partial file. Files
// found at start (from an earlier run) are adopted, oldest first.
type Disk struct {
	dir  string
	tmp  string
	max  int64
	mu   sync.Mutex
	lru  *simplelru.LRU[string, int64]
	used int64
	// reserved counts files being written into the cache (or spooled in
	// its directory): room is made for them before they are written.
	reserved int64
}

// NewDisk opens (creating if needed) a disk cache in dir holding at most
// maxBytes.
func NewDisk(dir string, maxBytes int64) (*Disk, error) {
	d := &Disk{dir: dir, tmp: filepath.Join(dir, ".tmp"), max: maxBytes}
	if err := os.MkdirAll(d.tmp, 0o755); err != nil {
		return nil, fmt.Errorf("disk cache: create %q: %w", d.tmp, err)
	}
	d.lru, _ = simplelru.NewLRU[string, int64](math.MaxInt32, func(key string, size int64) {
		d.used -= size
		_ = os.Remove(filepath.Join(d.dir, filepath.FromSlash(key)))
	})
	type found struct {
		key  string
		size int64
		mod  int64
	}
	var files []found
	_ = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if strings.HasPrefix(e.Name(), ".") && p != dir {
			if e.IsDir() {
				_ = os.RemoveAll(p) // leftovers of interrupted writes
				return filepath.SkipDir
			}
			return nil
		}
		if e.IsDir() {
			return nil
		}
		fi, err := e.Info()
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		files = append(files, found{filepath.ToSlash(rel), fi.Size(), fi.ModTime().UnixNano()})
		return nil
	})
	_ = os.MkdirAll(d.tmp, 0o755)
	// Oldest first, so that the newest end up most recently used.
	for i := 1; i < len(files); i++ {
		for j := i; j > 0 && files[j].mod < files[j-1].mod; j-- {
			files[j], files[j-1] = files[j-1], files[j]
		}
	}
	d.mu.Lock()
	for _, f := range files {
		d.addLocked(f.key, f.size)
	}
	d.mu.Unlock()
	return d, nil
}

func (d *Disk) path(key string) (string, error) {
	if err := storage.ValidKey(key); err != nil {
		return "", err
	}
	return filepath.Join(d.dir, filepath.FromSlash(key)), nil
}

// Open returns the cached file for key and its size, marking it recently
// used. The file stays readable even if it is evicted while open.
func (d *Disk) Open(key string) (*os.File, int64, bool) {
	p, err := d.path(key)
	if err != nil {
		return nil, 0, false
	}
	d.mu.Lock()
	size, ok := d.lru.Get(key)
	d.mu.Unlock()
	if !ok {
		return nil, 0, false
	}
	f, err := os.Open(p)
	if err != nil {
		d.Remove(key)
		return nil, 0, false
	}
	return f, size, true
}

// Put copies r into the cache under key. r must be complete and verified:
// an error from r leaves nothing cached.
func (d *Disk) Put(key string, r io.Reader) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(d.tmp, "put-*")
	if err != nil {
		return fmt.Errorf("disk cache: %w", err)
	}
	n, err := io.Copy(tmp, r)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("disk cache: write %s: %w", key, err)
	}
	return d.adopt(key, p, tmp.Name(), n)
}

// Writer is a file being written into the cache: nothing is visible
// under its key until Commit, and Abort (or a Commit after a short write)
// leaves nothing behind.
type Writer struct {
	d    *Disk
	key  string
	path string
	f    *os.File
	n    int64
}

// Create starts writing key.
func (d *Disk) Create(key string) (*Writer, error) {
	p, err := d.path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(d.tmp, "put-*")
	if err != nil {
		return nil, fmt.Errorf("disk cache: %w", err)
	}
	return &Writer{d: d, key: key, path: p, f: f}, nil
}

func (w *Writer) Write(b []byte) (int, error) {
	n, err := w.f.Write(b)
	w.n += int64(n)
	return n, err
}

// Commit makes the file visible if it holds exactly size bytes.
func (w *Writer) Commit(size int64) error {
	if err := w.f.Close(); err != nil || w.n != size {
		os.Remove(w.f.Name())
		return fmt.Errorf("disk cache: %s: wrote %d of %d bytes: %v", w.key, w.n, size, err)
	}
	return w.d.adopt(w.key, w.path, w.f.Name(), w.n)
}

// Abort drops the file.
func (w *Writer) Abort() {
	w.f.Close()
	os.Remove(w.f.Name())
}

// PutFile moves the complete file at src (on the same filesystem, else it
// is copied) into the cache under key.
func (d *Disk) PutFile(key, src string) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	fi, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("disk cache: %w", err)
	}
	// A hard link in the cache's own temp directory, renamed into place:
	// no copy, and a crash leaves nothing but a temp file cleared at start.
	tmp := filepath.Join(d.tmp, fmt.Sprintf("link-%d-%d", os.Getpid(), linkSeq.Add(1)))
	if err := os.Link(src, tmp); err != nil {
		f, err := os.Open(src)
		if err != nil {
			return fmt.Errorf("disk cache: %w", err)
		}
		defer f.Close()
		return d.Put(key, f)
	}
	return d.adopt(key, p, tmp, fi.Size())
}

var linkSeq atomic.Int64

func (d *Disk) adopt(key, p, tmp string, size int64) error {
	if size > d.max {
		os.Remove(tmp)
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("disk cache: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("disk cache: commit %s: %w", key, err)
	}
	d.addLocked(key, size) // updating an entry in place runs no eviction callback
	return nil
}

func (d *Disk) addLocked(key string, size int64) {
	if old, ok := d.lru.Peek(key); ok {
		d.used -= old
	}
	d.lru.Add(key, size)
	d.used += size
	d.evictLocked(key)
}

// evictLocked drops least recently used files until the cached and the
// reserved bytes fit (keep is never dropped).
func (d *Disk) evictLocked(keep string) {
	for d.used+d.reserved > d.max {
		k, _, ok := d.lru.GetOldest()
		if !ok || k == keep {
			break
		}
		d.lru.RemoveOldest()
	}
}

// Remove drops key from the cache.
func (d *Disk) Remove(key string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lru.Remove(key)
}

// Reserve makes room for n bytes about to be written into the cache's
// directory, evicting as needed; release gives the room back (call it
// once the file is committed or dropped). ok is false when n can never
// fit.
func (d *Disk) Reserve(n int64) (release func(), ok bool) {
	if n < 0 || n > d.max {
		return func() {}, false
	}
	d.mu.Lock()
	d.reserved += n
	d.evictLocked("")
	d.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			d.mu.Lock()
			d.reserved -= n
			d.mu.Unlock()
		})
	}, true
}

// Max is the cache's size limit.
func (d *Disk) Max() int64 { return d.max }

// Used is the total size of the cached files.
func (d *Disk) Used() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.used
}
