package agent

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/agent/guardian"
	"github.com/turbulence-sre/turbulence/agent/internal/fakecontroller"
	"github.com/turbulence-sre/turbulence/agent/journal"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// firstHeartbeat returns the first heartbeat ctrl receives: a fresh fake
// controller's, so that no earlier agent's messages are in its queue.
func firstHeartbeat(t *testing.T, ctrl *fakecontroller.Server) *turbulencev1.Heartbeat {
	t.Helper()
	return ctrl.WaitFor(waitLong, "first heartbeat", func(m *turbulencev1.AgentMessage) bool {
		return m.GetHeartbeat() != nil
	}).GetHeartbeat()
}

func statusOf(hb *turbulencev1.Heartbeat, id string) *turbulencev1.FaultStatus {
	for _, st := range hb.GetFaults() {
		if st.GetFaultId() == id {
			return st
		}
	}
	return nil
}

// Invariant 8: an agent SIGKILLed mid-fault whose unit's ExecStopPost
// (`turbulence-agent cleanup`) took the fault back before systemd
// restarted it: the restarted agent's first report carries the fault as
// REVERTED with cleanup's reason and time, and the start after that does
// not report it again.
func TestCleanup_OutcomeReachesControllerAtNextStart(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("workers need Linux /proc")
	}
	pki, err := tlsutil.EnsureDevPKI(t.TempDir(), "test-agent")
	if err != nil {
		t.Fatal(err)
	}
	ctrl := fakecontroller.Start(t, pki, fakecontroller.Options{})
	stateDir := t.TempDir()
	proc := startAgentProcess(t, pki, ctrl, stateDir)
	ctrl.WaitHello(waitLong)
	f := cpuFault("f-cleaned", 20, 10*time.Minute)
	res := (&testAgent{ctrl: ctrl}).apply(t, "c1", f)
	if !res.GetOk() {
		t.Fatalf("apply = %v", res)
	}
	if err := proc.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = proc.Wait()

	// systemd's ExecStopPost.
	before := time.Now()
	rec, err := Cleanup(Config{StateDir: stateDir, WorkerBinary: os.Args[0], Logger: slogFor(t)})
	after := time.Now()
	if err != nil || len(rec.Reverted) != 1 || rec.Reverted[0].GetFaultId() != "f-cleaned" {
		t.Fatalf("Cleanup = %+v, %v; want f-cleaned reverted", rec, err)
	}
	cleanedAt := rec.Reverted[0].GetEndedAt().AsTime()
	if cleanedAt.Before(before) || cleanedAt.After(after) {
		t.Fatalf("cleanup's ended_at %s is not within the cleanup [%s, %s]", cleanedAt, before, after)
	}

	// systemd restarts the agent: its first report carries the fault.
	ctrl2 := fakecontroller.Start(t, pki, fakecontroller.Options{})
	restarted := startAgentIn(t, pki, ctrl2, stateDir)
	ctrl2.WaitHello(waitLong)
	st := statusOf(firstHeartbeat(t, ctrl2), "f-cleaned")
	switch {
	case st == nil:
		t.Fatal("the restarted agent's first heartbeat does not carry f-cleaned")
	case st.GetState() != stateReverted || st.GetReason() != ReasonCleanup:
		t.Errorf("f-cleaned reported %s %q, want %s %q", st.GetState(), st.GetReason(), stateReverted, ReasonCleanup)
	case !st.GetEndedAt().AsTime().Equal(cleanedAt):
		t.Errorf("f-cleaned ended_at = %s, want cleanup's %s", st.GetEndedAt().AsTime(), cleanedAt)
	case !st.GetDeadline().AsTime().Equal(f.GetDeadline().AsTime()):
		t.Errorf("f-cleaned deadline = %s, want the fault's %s", st.GetDeadline().AsTime(), f.GetDeadline().AsTime())
	}
	if _, err := os.Stat(filepath.Join(stateDir, UnreportedFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s after the outcomes were handed over: %v, want it removed", UnreportedFile, err)
	}
	restarted.stop(t)

	// The start after that has nothing to say about it.
	ctrl3 := fakecontroller.Start(t, pki, fakecontroller.Options{})
	again := startAgentIn(t, pki, ctrl3, stateDir)
	ctrl3.WaitHello(waitLong)
	if st := statusOf(firstHeartbeat(t, ctrl3), "f-cleaned"); st != nil {
		t.Errorf("a second start reported f-cleaned again: %v", st)
	}
	again.stop(t)
}

// A file of outcomes that cannot be decoded is logged and removed, and the
// agent starts and takes faults as usual.
func TestAgent_CorruptUnreportedFileIsRemoved(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("workers need Linux /proc")
	}
	pki, err := tlsutil.EnsureDevPKI(t.TempDir(), "test-agent")
	if err != nil {
		t.Fatal(err)
	}
	stateDir := t.TempDir()
	path := filepath.Join(stateDir, UnreportedFile)
	if err := os.WriteFile(path, []byte(`{"version":1,"outcomes":[{"fault_id":"f-torn","sta`), 0o600); err != nil {
		t.Fatal(err)
	}
	ctrl := fakecontroller.Start(t, pki, fakecontroller.Options{})
	ta := startAgentIn(t, pki, ctrl, stateDir)
	ctrl.WaitHello(waitLong)
	if hb := firstHeartbeat(t, ctrl); len(hb.GetFaults()) != 0 {
		t.Errorf("first heartbeat lists %v, want nothing", hb.GetFaults())
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("corrupt %s after start-up: %v, want it removed", UnreportedFile, err)
	}
	if res := ta.apply(t, "c1", cpuFault("f-new", 5, time.Minute)); !res.GetOk() {
		t.Errorf("apply after a corrupt outcomes file = %v, want ok", res)
	}
}

// A fault its guardian took back before cleanup ran keeps the guardian's
// reason and time, not cleanup's.
func TestCleanup_KeepsTheGuardiansOutcome(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("the sweep needs Linux /proc")
	}
	stateDir := t.TempDir()
	j, _, err := journal.OpenFile(filepath.Join(stateDir, JournalFile))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := j.Append(journal.Record{Op: journal.OpIntent, FaultID: "f-guarded", Kind: "cpu", At: now, Deadline: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	guardedAt := now.Add(-time.Hour).Round(0)
	l, err := guardian.LockFault(stateDir, "f-guarded")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.SetOutcome(guardian.Outcome{Reason: guardian.ReasonDeadline, At: guardedAt}); err != nil {
		t.Fatal(err)
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}

	if _, err := Cleanup(Config{StateDir: stateDir, WorkerBinary: os.Args[0], Logger: slogFor(t)}); err != nil {
		t.Fatal(err)
	}
	kept, err := loadUnreported(stateDir)
	if err != nil || len(kept) != 1 {
		t.Fatalf("kept outcomes = %+v, %v; want f-guarded's", kept, err)
	}
	if o := kept[0]; o.FaultID != "f-guarded" || o.Reason != guardian.ReasonDeadline || !o.EndedAt.Equal(guardedAt) {
		t.Errorf("kept %+v, want f-guarded %q at the guardian's %s", o, guardian.ReasonDeadline, guardedAt)
	}
}
