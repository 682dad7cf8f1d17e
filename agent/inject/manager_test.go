package inject

import (
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/turbulence-sre/turbulence/internal/faultspec"
	"github.com/turbulence-sre/turbulence/internal/limits"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

const (
	stateActive   = turbulencev1.FaultState_FAULT_STATE_ACTIVE
	stateReverted = turbulencev1.FaultState_FAULT_STATE_REVERTED
)

func TestManager_ArmsTimerBeforeApply(t *testing.T) {
	t.Parallel()
	m, inj := newTestManager()
	defer m.Close(ReasonAgentStopping)
	if _, err := m.Apply(t.Context(), cpuFault("f1", time.Minute)); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if diff := cmp.Diff([]bool{true}, inj.armedAtApply); diff != "" {
		t.Errorf("timer armed when injector Apply ran (-want +got):\n%s", diff)
	}
}

func TestManager_ApplyTwiceIsNoop(t *testing.T) {
	t.Parallel()
	m, inj := newTestManager()
	defer m.Close(ReasonAgentStopping)
	first, err := m.Apply(t.Context(), cpuFault("f1", time.Minute))
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	second, err := m.Apply(t.Context(), cpuFault("f1", time.Minute))
	if err != nil {
		t.Fatalf("second Apply: %v", err)
	}
	if got := inj.applyCount(); got != 1 {
		t.Errorf("injector applies = %d, want 1", got)
	}
	if first.GetState() != stateActive || second.GetState() != stateActive || second.GetWorkerPid() != 4242 {
		t.Errorf("statuses = %v / %v, want both ACTIVE with the worker pid", first, second)
	}
	// An ended ID is not applied again either.
	if _, err := m.Revert(t.Context(), "f1", ReasonRevertRequested); err != nil {
		t.Fatalf("Revert: %v", err)
	}
	third, err := m.Apply(t.Context(), cpuFault("f1", time.Minute))
	if err != nil || third.GetState() != stateReverted || inj.applyCount() != 1 {
		t.Errorf("Apply after revert = %v, %v (applies %d), want the REVERTED status and no new apply", third, err, inj.applyCount())
	}
}

func TestManager_RevertIsIdempotent(t *testing.T) {
	t.Parallel()
	m, inj := newTestManager()
	defer m.Close(ReasonAgentStopping)
	if _, err := m.Apply(t.Context(), cpuFault("f1", time.Minute)); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	for i := range 3 {
		st, err := m.Revert(t.Context(), "f1", ReasonRevertRequested)
		if err != nil {
			t.Fatalf("Revert #%d: %v", i, err)
		}
		if st.GetState() != stateReverted || st.GetReason() != ReasonRevertRequested {
			t.Errorf("Revert #%d = %v, want REVERTED %q", i, st, ReasonRevertRequested)
		}
	}
	if got := inj.handle("f1").revertCount(); got != 1 {
		t.Errorf("handle reverts = %d, want 1", got)
	}
	st, err := m.Revert(t.Context(), "never-held", ReasonRevertRequested)
	if err != nil || st.GetState() != stateReverted {
		t.Errorf("Revert(unknown) = %v, %v, want REVERTED and no error", st, err)
	}
	if held := m.Held(); len(held) != 0 {
		t.Errorf("Held() = %v, want none", held)
	}
}

func TestManager_RevertAllReportsReasons(t *testing.T) {
	t.Parallel()
	m, inj := newTestManager()
	defer m.Close(ReasonAgentStopping)
	for _, id := range []string{"a", "b", "c"} {
		if _, err := m.Apply(t.Context(), cpuFault(id, time.Minute)); err != nil {
			t.Fatalf("Apply(%s): %v", id, err)
		}
	}
	held, _, _ := m.Report()
	if len(held) != 3 {
		t.Fatalf("Report held = %d faults, want 3", len(held))
	}
	if n := m.RevertAll(ReasonLeaseExpired); n != 3 {
		t.Errorf("RevertAll = %d, want 3", n)
	}
	held, ended, mark := m.Report()
	if len(held) != 0 {
		t.Errorf("held after RevertAll = %v, want none", held)
	}
	got := map[string]string{}
	for _, st := range ended {
		if st.GetState() != stateReverted {
			t.Errorf("ended %s state = %v, want REVERTED", st.GetFaultId(), st.GetState())
		}
		got[st.GetFaultId()] = st.GetReason()
	}
	want := map[string]string{"a": ReasonLeaseExpired, "b": ReasonLeaseExpired, "c": ReasonLeaseExpired}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ended reasons (-want +got):\n%s", diff)
	}
	for _, id := range []string{"a", "b", "c"} {
		if n := inj.handle(id).revertCount(); n != 1 {
			t.Errorf("%s reverted %d times, want 1", id, n)
		}
	}
	// Ended faults travel until a heartbeat carrying them got through.
	if _, again, _ := m.Report(); len(again) != 3 {
		t.Errorf("unacknowledged ended faults = %d, want 3 again", len(again))
	}
	m.AckEnded(mark)
	if _, after, _ := m.Report(); len(after) != 0 {
		t.Errorf("ended after AckEnded = %v, want none", after)
	}
}

func TestManager_DeadlineReverts(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		m, inj := newTestManager()
		defer m.Close(ReasonAgentStopping)
		f := cpuFault("f1", time.Hour)
		f.Deadline = timestamppb.New(time.Now().Add(10 * time.Minute)) // min(deadline, now+duration)
		st, err := m.Apply(t.Context(), f)
		if err != nil {
			t.Fatalf("Apply: %v", err)
		}
		if got, want := st.GetDeadline().AsTime(), f.Deadline.AsTime(); !got.Equal(want) {
			t.Errorf("deadline = %v, want the earlier fault deadline %v", got, want)
		}
		time.Sleep(10*time.Minute - time.Nanosecond)
		synctest.Wait()
		if len(m.Held()) != 1 {
			t.Fatalf("fault ended before its deadline")
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		_, ended, _ := m.Report()
		if len(ended) != 1 || ended[0].GetReason() != ReasonDeadline {
			t.Fatalf("ended = %v, want f1 with reason %q", ended, ReasonDeadline)
		}
		if inj.handle("f1").revertCount() != 1 {
			t.Errorf("handle not reverted at the deadline")
		}
	})
}

func TestManager_FailedApplyLeavesNothing(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		m, inj := newTestManager()
		defer m.Close(ReasonAgentStopping)
		inj.failWith = errBoom
		if _, err := m.Apply(t.Context(), cpuFault("f1", time.Minute)); !errors.Is(err, errBoom) {
			t.Fatalf("Apply = %v, want %v", err, errBoom)
		}
		time.Sleep(2 * time.Minute) // past the deadline: the disarmed timer must not fire
		synctest.Wait()
		if got := m.Faults(); len(got) != 0 {
			t.Errorf("Faults() after failed apply = %v, want none", got)
		}
		// A corrected retry applies.
		inj.failWith = nil
		if _, err := m.Apply(t.Context(), cpuFault("f1", time.Minute)); err != nil {
			t.Errorf("retry Apply: %v", err)
		}
	})
}

func TestManager_DeadlineDuringApplyRevertsAtOnce(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		m, inj := newTestManager()
		defer m.Close(ReasonAgentStopping)
		inj.block = make(chan struct{})
		done := make(chan *turbulencev1.FaultStatus)
		go func() {
			st, _ := m.Apply(t.Context(), cpuFault("f1", time.Second))
			done <- st
		}()
		time.Sleep(2 * time.Second) // the deadline passes while Apply hangs
		synctest.Wait()
		close(inj.block)
		st := <-done
		if st.GetState() != stateReverted || st.GetReason() != ReasonDeadline {
			t.Errorf("Apply = %v, want REVERTED %q", st, ReasonDeadline)
		}
		if inj.handle("f1").revertCount() != 1 {
			t.Errorf("late-applied fault was not reverted")
		}
	})
}

func TestManager_WorkerExitEndsFault(t *testing.T) {
	t.Parallel()
	m, inj := newTestManager()
	defer m.Close(ReasonAgentStopping)
	if _, err := m.Apply(t.Context(), cpuFault("f1", time.Minute)); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	inj.handle("f1").exit(errBoom)
	waitFor(t, 5*time.Second, func() bool { return len(m.Held()) == 0 })
	_, ended, _ := m.Report()
	if want := ReasonWorkerExited + "boom"; len(ended) != 1 || ended[0].GetReason() != want {
		t.Errorf("ended = %v, want reason %q", ended, want)
	}
}

// endReasonError is a worker exit that names its own end reason, as a
// worker that ended at its owner's lease does (agent/worker).
type endReasonError struct{}

func (endReasonError) Error() string     { return "exit status 3" }
func (endReasonError) EndReason() string { return ReasonLeaseExpired + " (the worker ended itself)" }

func TestManager_WorkerExitWithItsOwnReason(t *testing.T) {
	t.Parallel()
	m, inj := newTestManager()
	defer m.Close(ReasonAgentStopping)
	if _, err := m.Apply(t.Context(), cpuFault("f1", time.Minute)); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	inj.handle("f1").exit(fmt.Errorf("wrapped: %w", endReasonError{}))
	waitFor(t, 5*time.Second, func() bool { return len(m.Held()) == 0 })
	_, ended, _ := m.Report()
	if want := (endReasonError{}).EndReason(); len(ended) != 1 || ended[0].GetReason() != want {
		t.Errorf("ended = %v, want reason %q", ended, want)
	}
}

func TestManager_HaltRefusesUntilResume(t *testing.T) {
	t.Parallel()
	m, _ := newTestManager()
	defer m.Close(ReasonAgentStopping)
	if _, err := m.Apply(t.Context(), cpuFault("f1", time.Minute)); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	m.Halt()
	if _, ended, _ := m.Report(); len(ended) != 1 || ended[0].GetReason() != ReasonHalt {
		t.Errorf("ended after Halt = %v, want f1 reason %q", ended, ReasonHalt)
	}
	if _, err := m.Apply(t.Context(), cpuFault("f2", time.Minute)); !errors.Is(err, ErrHalted) {
		t.Errorf("Apply while halted = %v, want ErrHalted", err)
	}
	m.Resume()
	if _, err := m.Apply(t.Context(), cpuFault("f2", time.Minute)); err != nil {
		t.Errorf("Apply after Resume = %v", err)
	}
}

func TestManager_CloseRevertsAndRefuses(t *testing.T) {
	t.Parallel()
	m, inj := newTestManager()
	if _, err := m.Apply(t.Context(), cpuFault("f1", time.Minute)); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	m.Close(ReasonAgentStopping)
	if inj.handle("f1").revertCount() != 1 {
		t.Errorf("Close did not revert f1")
	}
	if _, ended, _ := m.Report(); len(ended) != 1 || ended[0].GetReason() != ReasonAgentStopping {
		t.Errorf("ended = %v, want reason %q", ended, ReasonAgentStopping)
	}
	if _, err := m.Apply(t.Context(), cpuFault("f2", time.Minute)); !errors.Is(err, ErrStopping) {
		t.Errorf("Apply after Close = %v, want ErrStopping", err)
	}
}

func TestManager_RefusesBadFaults(t *testing.T) {
	t.Parallel()
	m, inj := newTestManager()
	defer m.Close(ReasonAgentStopping)
	memory := cpuFault("mem", time.Minute)
	memory.Spec.Kind = &turbulencev1.FaultSpec_Memory{Memory: &turbulencev1.MemorySpec{Size: &turbulencev1.MemorySpec_Bytes{Bytes: 1}}}
	badLoad := cpuFault("bad", time.Minute)
	badLoad.Spec.GetCpu().LoadPercent = 101
	noDuration := cpuFault("nodur", time.Minute)
	noDuration.Spec.Duration = nil
	past := cpuFault("past", time.Minute)
	past.Deadline = timestamppb.New(time.Now().Add(-time.Second))
	noID := cpuFault("", time.Minute)
	tooLong := cpuFault("long", time.Minute)
	tooLong.Spec.Duration = durationpb.New(48 * time.Hour)

	var specErr *faultspec.Error
	tests := []struct {
		name  string
		fault *turbulencev1.Fault
		check func(error) bool
	}{
		{"unsupported kind", memory, func(err error) bool { return errors.Is(err, ErrUnsupportedKind) }},
		{"load 101", badLoad, func(err error) bool { return errors.As(err, &specErr) }},
		{"no duration", noDuration, func(err error) bool { return errors.As(err, &specErr) }},
		{"too long", tooLong, func(err error) bool { return errors.As(err, &specErr) }},
		{"deadline passed", past, func(err error) bool { return errors.Is(err, ErrDeadlinePassed) }},
		{"no id", noID, func(err error) bool { return errors.Is(err, ErrInvalidFault) }},
	}
	for _, tt := range tests {
		st, err := m.Apply(t.Context(), tt.fault)
		if err == nil || !tt.check(err) {
			t.Errorf("%s: Apply = %v, %v, want a refusal of the right type", tt.name, st, err)
		}
	}
	if n := inj.applyCount(); n != 0 {
		t.Errorf("injector applied %d refused faults, want 0 (invariant 6)", n)
	}
	if got := m.Faults(); len(got) != 0 {
		t.Errorf("Faults() = %v, want none", got)
	}
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", timeout)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not synchronisation
	}
}

// TestManager_ReportFitsOneHeartbeat: many faults that ended while the
// agent was away are reported a heartbeat's worth at a time, oldest first,
// and none is lost.
func TestManager_ReportFitsOneHeartbeat(t *testing.T) {
	t.Parallel()
	m, _ := newTestManager()
	defer m.Close(ReasonAgentStopping)
	var sts []*turbulencev1.FaultStatus
	for i := range limits.MaxHeldFaults + 36 {
		sts = append(sts, &turbulencev1.FaultStatus{FaultId: fmt.Sprintf("f-%03d", i), State: turbulencev1.FaultState_FAULT_STATE_REVERTED})
	}
	m.RecordRecovered(sts)
	var got []string
	for range 3 {
		held, ended, mark := m.Report()
		if len(held)+len(ended) > limits.MaxHeldFaults {
			t.Fatalf("one report lists %d faults, over the heartbeat's %d", len(held)+len(ended), limits.MaxHeldFaults)
		}
		for _, st := range ended {
			got = append(got, st.GetFaultId())
		}
		m.AckEnded(mark)
	}
	if len(got) != len(sts) || got[0] != "f-000" || got[len(got)-1] != sts[len(sts)-1].GetFaultId() {
		t.Errorf("reported %d faults (%v … %v), want all %d in order", len(got), got[:1], got[len(got)-1:], len(sts))
	}
}
