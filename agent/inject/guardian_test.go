package inject

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/agent/guardian"
	"github.com/turbulence-sre/turbulence/agent/journal"
	"github.com/turbulence-sre/turbulence/internal/testutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// guardedManager is a Manager whose fake kind is guarded, with a journal
// and real guardian processes (this test binary) in a state directory.
func guardedManager(t *testing.T) (*Manager, *fakeInjector, string) {
	t.Helper()
	dir := t.TempDir()
	m, inj := newTestManager()
	inj.undo = []byte(`{"fake":true}`)
	j, _, err := journal.OpenFile(filepath.Join(dir, guardianJournal))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = j.Close() })
	m.UseJournal(j)
	m.UseGuardians(guardian.Starter{Binary: os.Args[0], StateDir: dir})
	t.Cleanup(func() { m.Close(ReasonAgentStopping) })
	return m, inj, dir
}

// TestManager_GuardedFaultRevertsUnderItsLock: a guarded fault is reverted
// by the agent under the fault's lock; its outcome is written there, the
// guardian then exits and its lock file goes.
func TestManager_GuardedFaultRevertsUnderItsLock(t *testing.T) {
	t.Parallel()
	m, inj, dir := guardedManager(t)
	if _, err := m.Apply(t.Context(), cpuFault("f1", time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(guardian.LockPath(dir, "f1")); err != nil {
		t.Fatalf("no guardian lock file while the fault is held: %v", err)
	}
	st, err := m.Revert(t.Context(), "f1", ReasonRevertRequested)
	if err != nil || st.GetState() != turbulencev1.FaultState_FAULT_STATE_REVERTED || st.GetReason() != ReasonRevertRequested {
		t.Fatalf("Revert = %v, %v", st, err)
	}
	if n := inj.handle("f1").revertCount(); n != 1 {
		t.Errorf("host reverts = %d, want 1", n)
	}
	if _, err := os.Stat(guardian.LockPath(dir, "f1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("guardian lock file after the revert: %v, want it removed", err)
	}
}

// TestManager_GuardianFirstLeavesTheHostAlone: when the guardian took the
// fault back first (the agent was hung past the deadline), the agent's
// revert does not touch the host again, lets go of what the handle holds
// and reports the guardian's reason.
func TestManager_GuardianFirstLeavesTheHostAlone(t *testing.T) {
	t.Parallel()
	m, inj, dir := guardedManager(t)
	if _, err := m.Apply(t.Context(), cpuFault("f1", time.Hour)); err != nil {
		t.Fatal(err)
	}
	// What the guardian writes when it takes the fault back.
	if _, taken, err := guardian.Revert(dir, "f1", guardian.ReasonDeadline, func() error { return nil }); err != nil || !taken {
		t.Fatalf("guardian's revert = %v, %v", taken, err)
	}
	st, err := m.Revert(t.Context(), "f1", ReasonDeadline)
	if err != nil || st.GetState() != turbulencev1.FaultState_FAULT_STATE_REVERTED || st.GetReason() != guardian.ReasonDeadline {
		t.Fatalf("Revert = %v, %v; want REVERTED with the guardian's reason", st, err)
	}
	h := inj.handle("f1")
	if n := h.revertCount(); n != 0 {
		t.Errorf("host reverts = %d after the guardian's, want 0", n)
	}
	h.mu.Lock()
	released := h.released
	h.mu.Unlock()
	if released != 1 {
		t.Errorf("releases = %d, want 1", released)
	}
}

// TestManager_ApplyOvertakenByTheGuardian: the agent froze in the middle
// of an apply past the fault's end; its guardian took back what was on the
// host then and wrote its outcome; the apply went on when the agent woke.
// The agent takes back what its apply left, at once, and reports the
// guardian's reason: nothing stays on the host.
func TestManager_ApplyOvertakenByTheGuardian(t *testing.T) {
	t.Parallel()
	m, inj, dir := guardedManager(t)
	inj.block = make(chan struct{})
	type result struct {
		st  *turbulencev1.FaultStatus
		err error
	}
	done := make(chan result, 1)
	go func() {
		st, err := m.Apply(t.Context(), cpuFault("f1", time.Hour))
		done <- result{st, err}
	}()
	// The guardian exists (its lock file too) before the kind's Apply runs.
	testutil.WaitFor(t, 30*time.Second, func() (bool, string) {
		_, err := os.Stat(guardian.LockPath(dir, "f1"))
		return err == nil, "the guardian's lock file"
	})
	if _, taken, err := guardian.Revert(dir, "f1", guardian.ReasonLease, func() error { return nil }); err != nil || !taken {
		t.Fatalf("guardian's revert = %v, %v", taken, err)
	}
	close(inj.block) // the agent wakes; its apply goes on
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if n := inj.handle("f1").revertCount(); n != 1 {
		t.Errorf("host reverts of what the late apply left = %d, want 1", n)
	}
	if r.st.GetState() != turbulencev1.FaultState_FAULT_STATE_REVERTED || r.st.GetReason() != guardian.ReasonLease {
		t.Errorf("status = %v %q, want REVERTED with the guardian's reason %q", r.st.GetState(), r.st.GetReason(), guardian.ReasonLease)
	}
}

// TestManager_FailedApplyTellsTheGuardian: an apply that fails leaves
// nothing; its guardian must not act, and goes.
func TestManager_FailedApplyTellsTheGuardian(t *testing.T) {
	t.Parallel()
	m, inj, dir := guardedManager(t)
	inj.failWith = errors.New("refused by the kind")
	if _, err := m.Apply(t.Context(), cpuFault("f1", time.Hour)); err == nil {
		t.Fatal("Apply succeeded")
	}
	if _, err := os.Stat(guardian.LockPath(dir, "f1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("guardian lock file after a failed apply: %v, want it removed", err)
	}
}
