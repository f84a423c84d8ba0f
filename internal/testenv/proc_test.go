package testenv

import (
	"bufio"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// recordingTB is a test whose failures are recorded, not reported.
type recordingTB struct {
	testing.TB
	failed atomic.Bool
}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.failed.Store(true)
	r.TB.Logf("(recorded) "+format, args...)
}

// A test that passes its deadline is failed by name, and its hung helper
// is killed with everything it started.
func TestDeadlineKillsHungHelpers(t *testing.T) {
	rt := &recordingTB{TB: t}
	cmd := exec.Command("sh", "-c", "sleep 600 & echo $!; wait")
	out, _ := cmd.StdoutPipe()
	if err := Start(rt, cmd); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	grandchild, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("no pid: %q", line)
	}
	Deadline(rt, 200*time.Millisecond)
	done := make(chan error, 1)
	go func() { done <- Wait(cmd) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the hung helper was not killed")
	}
	if !rt.failed.Load() {
		t.Errorf("the test was not failed")
	}
	for deadline := time.Now().Add(2 * time.Second); syscall.Kill(grandchild, 0) == nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d, started by the helper, survived", grandchild)
		}
	}
}
