package sweep

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/turbulence-sre/turbulence/agent/internal/procfs"
	"github.com/turbulence-sre/turbulence/agent/worker"
)

// TestMain makes the test binary a worker, as the agent binary is.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == worker.Subcommand {
		os.Exit(worker.Main(os.Args[2:]))
	}
	_ = os.Setenv("GORACE", "atexit_sleep_ms=0")
	goleak.VerifyTestMain(m)
}

// startStray starts a CPU worker of this test binary the way a dead agent
// would have left it: no PDEATHSIG tie to us. It returns the process and
// reaps it in t.Cleanup.
func startStray(t *testing.T, faultID string) *exec.Cmd {
	t.Helper()
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("needs Linux /proc")
	}
	spec := worker.Spec{FaultID: faultID, Cores: 1, LoadPercent: 5, Deadline: time.Now().Add(time.Minute)}
	cmd := exec.Command(os.Args[0], append([]string{worker.Subcommand}, spec.Args()...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

// notUs is a PID that is not the parent of anything the test starts, so
// the test's own children look like orphans of another agent.
const notUs = -1

func TestProcesses_FindsStrayProcessOfThisBinary(t *testing.T) {
	cmd := startStray(t, "f-stray")
	found, err := Processes("/proc", os.Args[0], notUs)
	if err != nil {
		t.Fatal(err)
	}
	var got *Process
	for i := range found {
		if found[i].PID == cmd.Process.Pid {
			got = &found[i]
		}
	}
	if got == nil || got.Flag("--fault-id") != "f-stray" || got.StartTicks == 0 {
		t.Fatalf("Processes = %+v, want pid %d with fault f-stray", found, cmd.Process.Pid)
	}

	// A live agent's own workers are its children: never listed.
	mine, err := Processes("/proc", os.Args[0], os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range mine {
		if w.PID == cmd.Process.Pid {
			t.Errorf("Processes(self=%d) lists our own child %d", os.Getpid(), w.PID)
		}
	}
	// Another binary's workers are not ours either.
	foreign, err := Processes("/proc", "/bin/sh", notUs)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range foreign {
		if p.PID == cmd.Process.Pid {
			t.Errorf("Processes(/bin/sh) lists the stray %d of another binary", p.PID)
		}
	}
}

// strays lists the stray processes of this test binary with fault id.
func strays(t *testing.T, id string) []Process {
	t.Helper()
	ps, err := Processes("/proc", os.Args[0], notUs)
	if err != nil {
		t.Fatal(err)
	}
	var out []Process
	for _, p := range ps {
		if p.Flag("--fault-id") == id {
			out = append(out, p)
		}
	}
	return out
}

func TestKill_KillsAndIsIdempotent(t *testing.T) {
	cmd := startStray(t, "f-kill")
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	killed, err := Kill("/proc", strays(t, "f-kill"))
	if err != nil {
		t.Fatal(err)
	}
	hit := false
	for _, w := range killed {
		hit = hit || w.PID == cmd.Process.Pid
	}
	if !hit {
		t.Fatalf("Kill killed %+v, not the stray %d", killed, cmd.Process.Pid)
	}
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Errorf("stray worker exit = %v, want killed by SIGKILL", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("stray worker still running after the sweep")
	}
	again, err := Kill("/proc", strays(t, "f-kill"))
	if err != nil || len(again) != 0 {
		t.Errorf("second sweep = %+v, %v; want nothing", again, err)
	}
}

func TestKillWorker_ReusedPIDIsLeftAlone(t *testing.T) {
	cmd := startStray(t, "f-reuse")
	st, err := procfs.ReadStat("/proc", cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	err = KillWorker("/proc", cmd.Process.Pid, st.StartTicks+1)
	if !errors.Is(err, ErrNotThatProcess) {
		t.Fatalf("KillWorker with a different start time: err = %v, want ErrNotThatProcess", err)
	}
	if err := syscall.Kill(cmd.Process.Pid, 0); err != nil {
		t.Errorf("process %d was harmed: %v", cmd.Process.Pid, err)
	}
	if err := KillWorker("/proc", 1<<22+7, 5); err != nil {
		t.Errorf("KillWorker of a PID that does not exist: %v, want nil", err)
	}
}
