package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Redis is a running redis-server.
type Redis struct {
	URL  string
	port int
	dir  string
	bin  string
	cmd  *exec.Cmd
	t    testing.TB
}

// StartRedis starts redis-server on a free port (no persistence); it is
// stopped when the test ends.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	bin, ok := LookPath("redis-server")
	if !ok {
		if _, err := os.Stat("/usr/bin/redis-server"); err != nil {
			Missing(t, "redis-server", "apt-get install redis-server")
		}
		bin = "/usr/bin/redis-server"
	}
	r := &Redis{port: FreePort(t), dir: t.TempDir(), bin: bin, t: t}
	r.URL = fmt.Sprintf("redis://127.0.0.1:%d/0", r.port)
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// Start (re)starts the server on its port.
func (r *Redis) Start() {
	cmd := exec.Command(r.bin, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", r.dir)
	logf, _ := os.Create(filepath.Join(r.dir, "redis.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := Start(r.t, cmd); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	r.cmd = cmd
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", r.port))
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("redis-server did not start: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the server.
func (r *Redis) Stop() {
	if r.cmd != nil {
		KillGroup(r.cmd)
		r.cmd = nil
	}
}
