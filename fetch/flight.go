package fetch

import (
	"context"
	"io"
	"os"
	"sync"
	"time"
)

// flight is one upstream download of an immutable file, shared by every
// request for it that arrives while it runs. The body is spooled to a temp
// file; clients and the storage upload read the spool as it grows.
// Clients never receive the last byte before the download is complete and
// verified, so a failed or corrupt download is a truncated transfer for
// them, never a clean one; the storage upload gets an error instead of
// io.EOF, so nothing is committed.
type flight struct {
	key  string
	file *os.File // the spool, shared: the download writes, readers ReadAt
	path string   // its name while it has one (kept only for the disk cache)

	ready     chan struct{} // closed once the upstream answered (size or err known)
	readyOnce sync.Once
	done      chan struct{} // closed once the download is finished (err final)

	mu       sync.Mutex
	cond     *sync.Cond
	size     int64 // Content-Length, -1 when the upstream did not send one
	written  int64
	finished bool
	err      error
	refs     int
	modTime  time.Time
	// abandon is called when every client has left a running download;
	// it stops the download unless it is far enough along to finish.
	abandon func()
}

// markReady says the upstream answered (or the download failed first).
func (f *flight) markReady() { f.readyOnce.Do(func() { close(f.ready) }) }

// start makes the spool readable by the flight's clients.
func (f *flight) start(spool *os.File, size int64) {
	f.mu.Lock()
	f.file, f.size, f.modTime = spool, size, time.Now()
	f.mu.Unlock()
	f.markReady()
}

// release drops one reference to the flight: the last one closes the
// spool; the last client's leaving may stop the download (abandon).
func (f *flight) release() {
	f.mu.Lock()
	f.refs--
	last := f.refs == 0
	abandoned := f.refs == 1 && !f.finished && f.abandon != nil
	f.mu.Unlock()
	if abandoned {
		f.abandon()
	}
	if last && f.file != nil {
		f.file.Close()
		if f.path != "" {
			os.Remove(f.path)
		}
	}
}

// tail reads the spool from the start, waiting for bytes as they arrive.
type tail struct {
	f        *flight
	off      int64
	holdBack bool            // withhold the last byte until the download is verified
	ctx      context.Context // the reader's: a client that left stops waiting
}

func (t *tail) Read(p []byte) (int, error) {
	f := t.f
	f.mu.Lock()
	var avail int64
	for {
		if err := t.ctx.Err(); err != nil {
			f.mu.Unlock()
			return 0, err
		}
		if f.finished && f.err != nil {
			f.mu.Unlock()
			return 0, f.err
		}
		avail = f.written
		if t.holdBack && !f.finished && avail > 0 {
			avail-- // the last byte waits for verification
		}
		if t.off < avail {
			break
		}
		if f.finished {
			f.mu.Unlock()
			return 0, io.EOF
		}
		f.cond.Wait()
	}
	f.mu.Unlock()
	if n := avail - t.off; int64(len(p)) > n {
		p = p[:n]
	}
	n, err := f.file.ReadAt(p, t.off)
	t.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// reader reads the spool until the download ends or ctx does.
func (f *flight) reader(ctx context.Context, holdBack bool) (*tail, func()) {
	// Wake the reader when ctx ends: a stalled download must not hold a
	// client that has gone.
	stop := context.AfterFunc(ctx, func() {
		f.mu.Lock()
		f.cond.Broadcast()
		f.mu.Unlock()
	})
	return &tail{f: f, holdBack: holdBack, ctx: ctx}, func() { stop() }
}

// joinFlight returns the running download for key, or starts one.
func (c *Core) joinFlight(key string, src FileSource) *flight {
	c.flightsMu.Lock()
	defer c.flightsMu.Unlock()
	if f, ok := c.flights[key]; ok {
		f.mu.Lock()
		f.refs++
		f.mu.Unlock()
		c.metrics.flightWaits.Inc()
		return f
	}
	f := &flight{key: key, ready: make(chan struct{}), done: make(chan struct{}), size: -1, refs: 2}
	f.cond = sync.NewCond(&f.mu)
	c.flights[key] = f
	c.wg.Add(1)
	go c.download(f, src)
	return f
}

// endFlight is the download's own end: the flight is forgotten and its
// reference dropped.
func (c *Core) endFlight(f *flight) {
	c.forgetFlight(f)
	f.release()
	c.wg.Done()
}

// forgetFlight makes later requests for the key start afresh (a newer
// flight for the same key is left alone).
func (c *Core) forgetFlight(f *flight) {
	c.flightsMu.Lock()
	if c.flights[f.key] == f {
		delete(c.flights, f.key)
	}
	c.flightsMu.Unlock()
}
