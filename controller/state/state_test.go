package state

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func meta(req string) Meta { return Meta{RequestID: req, Actor: "admin/test", Time: t0} }

func newFault(id, agent string) *turbulencev1.Fault {
	return &turbulencev1.Fault{
		Id:       id,
		AgentId:  agent,
		Spec:     &turbulencev1.FaultSpec{Duration: durationpb.New(time.Minute), Kind: &turbulencev1.FaultSpec_Cpu{Cpu: &turbulencev1.CPUSpec{LoadPercent: 50}}},
		Deadline: timestamppb.New(t0.Add(time.Minute)),
	}
}

// withAgent returns a state holding agent "a1".
func withAgent(t *testing.T) *State {
	t.Helper()
	s := New()
	if _, err := s.ApplyRegisterAgent(meta(""), &turbulencev1.Agent{Id: "a1"}); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestState_Transitions(t *testing.T) {
	t.Parallel()
	const (
		pending   = turbulencev1.FaultState_FAULT_STATE_PENDING
		active    = turbulencev1.FaultState_FAULT_STATE_ACTIVE
		reverting = turbulencev1.FaultState_FAULT_STATE_REVERTING
		reverted  = turbulencev1.FaultState_FAULT_STATE_REVERTED
		failed    = turbulencev1.FaultState_FAULT_STATE_FAILED
		unknown   = turbulencev1.FaultState_FAULT_STATE_UNCONFIRMED
	)
	tests := []struct {
		path    []turbulencev1.FaultState // states to move through after PENDING
		want    turbulencev1.FaultState
		wantErr error // of the last step
	}{
		{path: []turbulencev1.FaultState{active}, want: active},
		{path: []turbulencev1.FaultState{failed}, want: failed},
		{path: []turbulencev1.FaultState{reverting}, want: reverting},
		{path: []turbulencev1.FaultState{reverted}, want: reverted},
		{path: []turbulencev1.FaultState{active, reverting, reverted}, want: reverted},
		{path: []turbulencev1.FaultState{active, reverted}, want: reverted},
		{path: []turbulencev1.FaultState{active, failed}, want: active, wantErr: ErrInvalidTransition},
		{path: []turbulencev1.FaultState{reverting, active}, want: reverting, wantErr: ErrInvalidTransition},
		{path: []turbulencev1.FaultState{active, pending}, want: active, wantErr: ErrInvalidEntry},
		// UNCONFIRMED is entered from any live state and left only on
		// the agent's word: its end (REVERTED) or a revert (REVERTING).
		{path: []turbulencev1.FaultState{unknown}, want: unknown},
		{path: []turbulencev1.FaultState{active, unknown, reverted}, want: reverted},
		{path: []turbulencev1.FaultState{reverting, unknown, reverting}, want: reverting},
		{path: []turbulencev1.FaultState{active, unknown, active}, want: unknown, wantErr: ErrInvalidTransition},
		{path: []turbulencev1.FaultState{active, unknown, failed}, want: unknown, wantErr: ErrInvalidTransition},
		// Ended states are final; later updates are ignored, not errors.
		{path: []turbulencev1.FaultState{reverted, active}, want: reverted},
		{path: []turbulencev1.FaultState{failed, reverted}, want: failed},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.path), func(t *testing.T) {
			t.Parallel()
			s := withAgent(t)
			if _, err := s.ApplyCreateFault(meta("r1"), newFault("f1", "a1")); err != nil {
				t.Fatal(err)
			}
			var err error
			for _, st := range tt.path {
				_, err = s.ApplyUpdateFault(meta(""), FaultUpdate{FaultID: "f1", State: st, Reason: "test"})
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("last update error = %v, want %v", err, tt.wantErr)
			}
			f, _ := s.Fault("f1")
			if f.GetState() != tt.want {
				t.Errorf("state = %s, want %s", f.GetState(), tt.want)
			}
			if Ended(tt.want) && f.GetEndedAt() == nil {
				t.Error("ended fault has no ended_at")
			}
		})
	}
}

// TestState_UnconfirmedThenReported: UNCONFIRMED carries the time given in
// the entry and a reason that may be refined; the agent's report ends it
// with the agent's ended_at, not the entry's time (invariant 8).
func TestState_UnconfirmedThenReported(t *testing.T) {
	t.Parallel()
	s := withAgent(t)
	if _, err := s.ApplyCreateFault(meta("r1"), newFault("f1", "a1")); err != nil {
		t.Fatal(err)
	}
	leaseEnd := t0.Add(-3 * time.Second)
	steps := []FaultUpdate{
		{FaultID: "f1", State: turbulencev1.FaultState_FAULT_STATE_ACTIVE},
		{FaultID: "f1", State: turbulencev1.FaultState_FAULT_STATE_UNCONFIRMED, Reason: "lease expired", UnconfirmedSince: leaseEnd},
		{FaultID: "f1", State: turbulencev1.FaultState_FAULT_STATE_UNCONFIRMED, Reason: "no record", UnconfirmedSince: t0},
	}
	for _, u := range steps {
		if _, err := s.ApplyUpdateFault(meta(""), u); err != nil {
			t.Fatal(err)
		}
	}
	f, _ := s.Fault("f1")
	if f.GetReason() != "no record" || !f.GetUnconfirmedSince().AsTime().Equal(leaseEnd) || f.GetEndedAt() != nil {
		t.Errorf("unconfirmed fault = %q since %v ended %v; want \"no record\" since the lease's end %s, not ended", f.GetReason(), f.GetUnconfirmedSince(), f.GetEndedAt(), leaseEnd)
	}
	agentEnd := t0.Add(-time.Minute)
	f, err := s.ApplyUpdateFault(meta(""), FaultUpdate{FaultID: "f1", State: turbulencev1.FaultState_FAULT_STATE_REVERTED, Reason: "agent restarted",
		Status: &turbulencev1.FaultStatus{FaultId: "f1", State: turbulencev1.FaultState_FAULT_STATE_REVERTED, EndedAt: timestamppb.New(agentEnd)}})
	if err != nil {
		t.Fatal(err)
	}
	if !f.GetEndedAt().AsTime().Equal(agentEnd) || f.GetReason() != "agent restarted" || f.GetUnconfirmedSince() != nil {
		t.Errorf("reported fault = %q ended %v since %v; want \"agent restarted\" ended at the agent's %s", f.GetReason(), f.GetEndedAt(), f.GetUnconfirmedSince(), agentEnd)
	}
	var types []string
	for _, e := range s.Events(0, 0) {
		if e.GetFaultId() == "f1" {
			types = append(types, e.GetType())
		}
	}
	want := []string{EventFaultCreated, EventFaultActive, EventFaultUnconfirmed, EventFaultUnconfirmed, EventFaultReverted}
	if fmt.Sprint(types) != fmt.Sprint(want) {
		t.Errorf("events = %v, want %v", types, want)
	}
}

func TestState_CreateFaultIsIdempotent(t *testing.T) {
	t.Parallel()
	s := withAgent(t)
	first, err := s.ApplyCreateFault(meta("req"), newFault("f1", "a1"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.ApplyCreateFault(meta("req"), newFault("f2", "a1"))
	if err != nil {
		t.Fatal(err)
	}
	if again.GetId() != first.GetId() {
		t.Errorf("retry created %q, want the first fault %q", again.GetId(), first.GetId())
	}
	if n := len(s.Faults(FaultFilter{})); n != 1 {
		t.Errorf("faults = %d, want 1", n)
	}
}

func TestState_CreateFaultRejections(t *testing.T) {
	t.Parallel()
	s := withAgent(t)
	if _, err := s.ApplyCreateFault(meta(""), newFault("f1", "nobody")); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown agent: err = %v, want ErrNotFound", err)
	}
	noDeadline := newFault("f1", "a1")
	noDeadline.Deadline = nil
	if _, err := s.ApplyCreateFault(meta(""), noDeadline); !errors.Is(err, ErrInvalidEntry) {
		t.Errorf("no deadline: err = %v, want ErrInvalidEntry", err)
	}
	if _, err := s.ApplySetHalt(meta(""), true, "stop"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ApplyCreateFault(meta(""), newFault("f1", "a1")); !errors.Is(err, ErrHalted) {
		t.Errorf("halted: err = %v, want ErrHalted", err)
	}
	if n := len(s.Faults(FaultFilter{})); n != 0 {
		t.Errorf("faults = %d after rejections, want 0", n)
	}
}

func TestState_HaltRevertsLiveFaults(t *testing.T) {
	t.Parallel()
	s := withAgent(t)
	for _, id := range []string{"f1", "f2", "f3"} {
		if _, err := s.ApplyCreateFault(meta(""), newFault(id, "a1")); err != nil {
			t.Fatal(err)
		}
	}
	mustUpdate(t, s, "f2", turbulencev1.FaultState_FAULT_STATE_ACTIVE)
	mustUpdate(t, s, "f3", turbulencev1.FaultState_FAULT_STATE_FAILED)
	h, err := s.ApplySetHalt(meta(""), true, "slo burn")
	if err != nil {
		t.Fatal(err)
	}
	if !h.GetHalted() || h.GetBy() != "admin/test" || h.GetReason() != "slo burn" {
		t.Errorf("halt status = %v", h)
	}
	want := map[string]turbulencev1.FaultState{
		"f1": turbulencev1.FaultState_FAULT_STATE_REVERTING,
		"f2": turbulencev1.FaultState_FAULT_STATE_REVERTING,
		"f3": turbulencev1.FaultState_FAULT_STATE_FAILED,
	}
	for id, st := range want {
		f, _ := s.Fault(id)
		if f.GetState() != st {
			t.Errorf("%s state = %s, want %s", id, f.GetState(), st)
		}
		if st == turbulencev1.FaultState_FAULT_STATE_REVERTING && f.GetReason() != HaltReason {
			t.Errorf("%s reason = %q, want %q", id, f.GetReason(), HaltReason)
		}
	}
	if _, err := s.ApplySetHalt(meta(""), false, ""); err != nil {
		t.Fatal(err)
	}
	if s.Halt().GetHalted() {
		t.Error("still halted after resume")
	}
	var types []string
	for _, e := range s.Events(0, 0) {
		types = append(types, e.GetType())
	}
	wantTypes := []string{
		EventAgentRegistered, EventFaultCreated, EventFaultCreated, EventFaultCreated,
		EventFaultActive, EventFaultFailed, EventFleetHalted, EventFaultReverting, EventFaultReverting, EventFleetResumed,
	}
	if fmt.Sprint(types) != fmt.Sprint(wantTypes) {
		t.Errorf("events = %v, want %v", types, wantTypes)
	}
}

func mustUpdate(t *testing.T, s *State, id string, st turbulencev1.FaultState) {
	t.Helper()
	if _, err := s.ApplyUpdateFault(meta(""), FaultUpdate{FaultID: id, State: st}); err != nil {
		t.Fatal(err)
	}
}

func TestState_EventLogIsBounded(t *testing.T) {
	t.Parallel()
	s := New()
	for i := range MaxEvents + 5 {
		if _, err := s.ApplyRegisterAgent(meta(""), &turbulencev1.Agent{Id: fmt.Sprint("a", i%3)}); err != nil {
			t.Fatal(err)
		}
	}
	evs := s.Events(0, 0)
	if len(evs) != MaxEvents {
		t.Fatalf("kept %d events, want %d", len(evs), MaxEvents)
	}
	if got := evs[0].GetSequence(); got != 6 {
		t.Errorf("oldest kept sequence = %d, want 6", got)
	}
	if got := s.Events(MaxEvents+3, 0); len(got) != 2 || got[0].GetSequence() != MaxEvents+4 {
		t.Errorf("Events(after %d) = %v", MaxEvents+3, got)
	}
	if got := s.Events(10, 3); len(got) != 3 || got[0].GetSequence() != 11 {
		t.Errorf("Events(10, 3) = %v", got)
	}
}

func TestState_ReadsAreCopies(t *testing.T) {
	t.Parallel()
	s := withAgent(t)
	a, _ := s.Agent("a1")
	a.Labels = map[string]string{"x": "y"}
	again, _ := s.Agent("a1")
	if len(again.GetLabels()) != 0 {
		t.Error("changing a read agent changed the state")
	}
}

func TestState_ChangedIsClosedOnChange(t *testing.T) {
	t.Parallel()
	s := New()
	ch := s.Changed()
	select {
	case <-ch:
		t.Fatal("closed before any change")
	default:
	}
	if _, err := s.ApplyRegisterAgent(meta(""), &turbulencev1.Agent{Id: "a1"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	default:
		t.Fatal("not closed after a change")
	}
}
