package inject

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestManager_LocalHaltRevertsAndOnlyLocalResumeLifts(t *testing.T) {
	t.Parallel()
	m, inj := newTestManager()
	defer m.Close(ReasonAgentStopping)
	for _, id := range []string{"f2", "f1"} {
		if _, err := m.Apply(t.Context(), cpuFault(id, time.Minute)); err != nil {
			t.Fatalf("Apply %s: %v", id, err)
		}
	}
	if got := m.HeldKinds(); got["f1"] != "cpu" || got["f2"] != "cpu" {
		t.Errorf("HeldKinds = %v, want f1 and f2 cpu", got)
	}

	reverted := m.HaltLocally(LocalHalt{Host: "db-2", Reason: "disk latency"})
	if len(reverted) != 2 || reverted[0].GetFaultId() != "f1" || reverted[1].GetFaultId() != "f2" {
		t.Fatalf("HaltLocally returned %v, want f1 and f2", reverted)
	}
	for _, st := range reverted {
		if st.GetState() != stateReverted || st.GetReason() != ReasonLocalHalt {
			t.Errorf("%s: %v, want REVERTED %q", st.GetFaultId(), st, ReasonLocalHalt)
		}
		if h := inj.handle(st.GetFaultId()); h.revertCount() != 1 {
			t.Errorf("%s reverted %d times, want once", st.GetFaultId(), h.revertCount())
		}
	}
	if held := m.Held(); len(held) != 0 {
		t.Errorf("held after local halt = %v, want none", held)
	}
	lh, ok := m.LocalHalt()
	if !ok || !m.LocallyHalted() || lh.Host != "db-2" || lh.Reason != "disk latency" || lh.Since.IsZero() {
		t.Errorf("LocalHalt = %+v, %v; want db-2, disk latency, a time", lh, ok)
	}

	wantMsg := "agent halted locally on db-2: disk latency; run turbulence-agent resume there"
	_, err := m.Apply(t.Context(), cpuFault("f3", time.Minute))
	if !errors.Is(err, ErrHaltedLocally) || err.Error() != wantMsg {
		t.Errorf("Apply while halted locally = %v, want %q", err, wantMsg)
	}
	// A second halt keeps the first one's reason.
	m.HaltLocally(LocalHalt{Host: "db-2", Reason: "again"})
	if lh, _ := m.LocalHalt(); lh.Reason != "disk latency" {
		t.Errorf("reason after a second halt = %q, want the first %q", lh.Reason, "disk latency")
	}

	// The controller cannot lift a local halt (invariant 5).
	m.Resume()
	if _, err := m.Apply(t.Context(), cpuFault("f3", time.Minute)); !errors.Is(err, ErrHaltedLocally) {
		t.Errorf("Apply after a fleet Resume = %v, want still ErrHaltedLocally", err)
	}
	if !m.ResumeLocally() || m.ResumeLocally() {
		t.Errorf("ResumeLocally = first false or second true; want true then false")
	}
	if _, err := m.Apply(t.Context(), cpuFault("f3", time.Minute)); err != nil {
		t.Errorf("Apply after ResumeLocally = %v", err)
	}
}

func TestManager_LocalResumeDoesNotLiftFleetHalt(t *testing.T) {
	t.Parallel()
	m, _ := newTestManager()
	defer m.Close(ReasonAgentStopping)
	m.Halt()
	m.HaltLocally(LocalHalt{Host: "h"})
	_, err := m.Apply(t.Context(), cpuFault("f1", time.Minute))
	if !errors.Is(err, ErrHaltedLocally) || !strings.Contains(err.Error(), "no reason given") {
		t.Errorf("Apply under both halts = %v, want the local halt named first", err)
	}
	m.ResumeLocally()
	if _, err := m.Apply(t.Context(), cpuFault("f1", time.Minute)); !errors.Is(err, ErrHalted) {
		t.Errorf("Apply after a local resume under a fleet halt = %v, want ErrHalted", err)
	}
	if !m.Halted() {
		t.Errorf("fleet halt lifted by a local resume")
	}
}

func TestManager_LocalHaltDuringApplyRevertsIt(t *testing.T) {
	t.Parallel()
	m, inj := newTestManager()
	defer m.Close(ReasonAgentStopping)
	inj.block = make(chan struct{})
	applied := make(chan error, 1)
	go func() {
		_, err := m.Apply(t.Context(), cpuFault("f1", time.Minute))
		applied <- err
	}()
	waitFor(t, 5*time.Second, func() bool { return inj.applyCount() == 1 })

	halted := make(chan int, 1)
	go func() { halted <- len(m.HaltLocally(LocalHalt{Host: "h", Reason: "stop"})) }()
	// The halt must wait for the running apply and revert its fault.
	select {
	case n := <-halted:
		t.Fatalf("HaltLocally returned (%d reverted) while an apply was still running", n)
	case <-time.After(50 * time.Millisecond): // a window for a wrong early return; not synchronisation
	}
	close(inj.block)
	if n := <-halted; n != 1 {
		t.Errorf("HaltLocally reverted %d faults, want the one being applied", n)
	}
	if err := <-applied; err != nil {
		t.Errorf("Apply = %v, want its status (reverted)", err)
	}
	if h := inj.handle("f1"); h == nil || h.revertCount() != 1 {
		t.Errorf("fault applied during the halt was not reverted")
	}
}
