package worker

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// stuckWorkerArg makes the test binary a process whose work never ends and
// never looks at a context: only exitAtDeadline can end it.
const stuckWorkerArg = "stuck-worker"

// stuckExitCode tells exitAtDeadline's exit apart from any other.
const stuckExitCode = 7

func runStuckWorker(deadlineNanos string) {
	n, err := strconv.ParseInt(deadlineNanos, 10, 64)
	if err != nil {
		os.Exit(2)
	}
	exitAtDeadline(time.Unix(0, n), stuckExitCode, nil)
	select {} // a hung worker: no context, no signal handler
}

// TestExitAtDeadline_EndsAWorkerWhoseWorkHangs: the kernel-clock thread ends
// the process at its deadline, not before, even when the work ignores every
// context (invariant 1, defence in depth).
func TestExitAtDeadline_EndsAWorkerWhoseWorkHangs(t *testing.T) {
	deadline := time.Now().Add(300 * time.Millisecond)
	cmd := exec.Command(selfBinary(t), stuckWorkerArg, strconv.FormatInt(deadline.UnixNano(), 10))
	if err := cmd.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != stuckExitCode {
			t.Errorf("stuck worker ended with %v, want exit status %d from exitAtDeadline", err, stuckExitCode)
		}
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		if err := <-done; err == nil {
			t.Log("stuck worker exited 0 after the kill")
		}
		t.Fatal("stuck worker still running 10 s after starting; its deadline was 300 ms")
	}
	if early := time.Until(deadline); early > 0 {
		t.Errorf("stuck worker ended %s before its deadline", early)
	}
}
