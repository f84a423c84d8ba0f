package testenv

import (
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Helper processes (servers, clients) run in process groups of their own,
// so that one kill ends a process and everything it started; every group
// still alive is killed when its test ends and when a test passes its
// deadline, so that neither a finished nor a hung test leaves a process
// behind.

type helper struct {
	once   sync.Once
	err    error
	exited chan struct{} // closed once reaped: its pid may be reused
}

var (
	procsMu sync.Mutex
	procs   = map[*exec.Cmd]*helper{}
)

// Start starts cmd in its own process group and kills the group when
// the test ends (if it is still running then).
func Start(t testing.TB, cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		return err
	}
	procsMu.Lock()
	procs[cmd] = &helper{exited: make(chan struct{})}
	procsMu.Unlock()
	t.Cleanup(func() { KillGroup(cmd) })
	return nil
}

// Run starts cmd like Start and waits for it.
func Run(t testing.TB, cmd *exec.Cmd) error {
	if err := Start(t, cmd); err != nil {
		return err
	}
	return Wait(cmd)
}

// Wait waits for a helper started by Start; any number of callers may
// wait for one helper at once.
func Wait(cmd *exec.Cmd) error {
	procsMu.Lock()
	h := procs[cmd]
	procsMu.Unlock()
	if h == nil {
		return nil // already reaped and forgotten
	}
	h.once.Do(func() { h.err = cmd.Wait(); close(h.exited) })
	return h.err
}

// Alive reports whether cmd was started and not yet killed or stopped
// through this package.
func Alive(cmd *exec.Cmd) bool {
	procsMu.Lock()
	defer procsMu.Unlock()
	h, ok := procs[cmd]
	if !ok || cmd.Process == nil {
		return false
	}
	select {
	case <-h.exited:
		return false
	default:
		return true
	}
}

// KillGroup kills cmd's process group and reaps cmd.
func KillGroup(cmd *exec.Cmd) {
	if cmd.Process == nil {
		return
	}
	procsMu.Lock()
	h, ok := procs[cmd]
	procsMu.Unlock()
	if !ok {
		return
	}
	select {
	case <-h.exited: // reaped: its group id may belong to another process now
	default:
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	_ = Wait(cmd)
	procsMu.Lock()
	delete(procs, cmd)
	procsMu.Unlock()
}

// KillAll kills every helper process group still alive.
func KillAll() {
	procsMu.Lock()
	var all []*exec.Cmd
	for c := range procs {
		all = append(all, c)
	}
	procsMu.Unlock()
	for _, c := range all {
		KillGroup(c)
	}
}

// Deadline fails the test by name if it is still running after d, and
// kills every helper process, so that a hang ends as a failure of that
// test (the test's own waits then fail fast) instead of a package
// timeout with a goroutine dump.
func Deadline(t testing.TB, d time.Duration) {
	timer := time.AfterFunc(d, func() {
		t.Errorf("%s passed its deadline of %v: killing its helper processes", t.Name(), d)
		KillAll()
	})
	t.Cleanup(func() { timer.Stop() })
}
