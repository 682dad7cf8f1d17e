package state

import (
	"fmt"
	"slices"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/turbulence-sre/turbulence/internal/faultspec"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Ended reports whether a fault in this state is finished for good.
// Ended states are final: nothing moves a fault out of them.
func Ended(st turbulencev1.FaultState) bool {
	return st == turbulencev1.FaultState_FAULT_STATE_REVERTED || st == turbulencev1.FaultState_FAULT_STATE_FAILED
}

// transitions lists, for each live state, the states a fault may move to.
var transitions = map[turbulencev1.FaultState][]turbulencev1.FaultState{
	turbulencev1.FaultState_FAULT_STATE_PENDING: {
		turbulencev1.FaultState_FAULT_STATE_ACTIVE,
		turbulencev1.FaultState_FAULT_STATE_FAILED,
		turbulencev1.FaultState_FAULT_STATE_REVERTING,
		turbulencev1.FaultState_FAULT_STATE_REVERTED,
	},
	turbulencev1.FaultState_FAULT_STATE_ACTIVE: {
		turbulencev1.FaultState_FAULT_STATE_REVERTING,
		turbulencev1.FaultState_FAULT_STATE_REVERTED,
	},
	turbulencev1.FaultState_FAULT_STATE_REVERTING: {
		turbulencev1.FaultState_FAULT_STATE_REVERTED,
	},
}

var stateEvents = map[turbulencev1.FaultState]string{
	turbulencev1.FaultState_FAULT_STATE_ACTIVE:    EventFaultActive,
	turbulencev1.FaultState_FAULT_STATE_REVERTING: EventFaultReverting,
	turbulencev1.FaultState_FAULT_STATE_REVERTED:  EventFaultReverted,
	turbulencev1.FaultState_FAULT_STATE_FAILED:    EventFaultFailed,
}

// ApplyCreateFault records a new fault in state PENDING. A request ID
// seen before returns the fault it created then, so a client retry after
// a lost answer does not create a second fault.
func (s *State) ApplyCreateFault(m Meta, f *turbulencev1.Fault) (*turbulencev1.Fault, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id, ok := s.d.applied[m.RequestID]; ok && m.RequestID != "" {
		if prev, ok := s.d.faults[id]; ok {
			return clone(prev), nil
		}
	}
	switch {
	case f.GetId() == "":
		return nil, errorf(ErrInvalidEntry, "create fault: fault id is required")
	case f.GetAgentId() == "":
		return nil, errorf(ErrInvalidEntry, "create fault: agent id is required")
	case f.GetDeadline() == nil:
		// Invariant 1: there is no fault without a deadline.
		return nil, errorf(ErrInvalidEntry, "create fault: deadline is required")
	}
	// Invariant 5: the API checks the halt flag before proposing, but a
	// Halt may be ordered between that check and this entry. The log
	// order decides, on every replica alike.
	if s.d.halt.GetHalted() {
		return nil, errorf(ErrHalted, "fleet halted by %s: %s", s.d.halt.GetBy(), s.d.halt.GetReason())
	}
	if _, ok := s.d.agents[f.GetAgentId()]; !ok {
		return nil, errorf(ErrNotFound, "agent_id: agent %q is not registered", f.GetAgentId())
	}
	if _, ok := s.d.faults[f.GetId()]; ok {
		return nil, errorf(ErrExists, "fault %q already exists", f.GetId())
	}
	rec := clone(f)
	rec.State = turbulencev1.FaultState_FAULT_STATE_PENDING
	rec.EndedAt = nil
	rec.Reason = ""
	if rec.CreatedAt == nil {
		rec.CreatedAt = timestamppb.New(m.Time)
	}
	if rec.CreatedBy == "" {
		rec.CreatedBy = m.Actor
	}
	s.d.faults[rec.GetId()] = rec
	s.d.indexFault(rec)
	s.d.remember(m.RequestID, rec.GetId())
	msg := fmt.Sprintf("%s fault for %s by %s", faultspec.Kind(rec.GetSpec()), rec.GetSpec().GetDuration().AsDuration(), rec.GetCreatedBy())
	s.d.appendEvent(m.Time, EventFaultCreated, rec.GetAgentId(), rec.GetId(), msg)
	s.notifyLocked()
	return clone(rec), nil
}

// FaultUpdate is a requested change of a fault's state.
type FaultUpdate struct {
	FaultID string
	State   turbulencev1.FaultState
	Reason  string
	// Status, when set, replaces the agent's last reported status.
	Status *turbulencev1.FaultStatus
}

// ApplyUpdateFault moves a fault to a new state. An update to an ended
// fault is ignored and returns the fault unchanged: agents report ends
// more than once (result, heartbeat, next Hello) and that is not an error.
// An update to the state the fault is in refreshes its status only.
func (s *State) ApplyUpdateFault(m Meta, u FaultUpdate) (*turbulencev1.Fault, error) {
	if u.State == turbulencev1.FaultState_FAULT_STATE_UNSPECIFIED || u.State == turbulencev1.FaultState_FAULT_STATE_PENDING {
		return nil, errorf(ErrInvalidEntry, "update fault %q: cannot move to %s", u.FaultID, u.State)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.d.faults[u.FaultID]
	if !ok {
		return nil, errorf(ErrNotFound, "fault %q not found", u.FaultID)
	}
	if Ended(f.GetState()) {
		return clone(f), nil
	}
	if u.State != f.GetState() && !slices.Contains(transitions[f.GetState()], u.State) {
		return nil, errorf(ErrInvalidTransition, "fault %q cannot move from %s to %s", u.FaultID, f.GetState(), u.State)
	}
	if u.Status != nil {
		f.Status = clone(u.Status)
	}
	if u.State != f.GetState() {
		s.d.moveFault(m, f, u.State, u.Reason)
	}
	s.d.remember(m.RequestID, f.GetId())
	s.notifyLocked()
	return clone(f), nil
}

// moveFault changes a fault's state and records the event. The caller has
// checked that the transition is allowed.
func (d *data) moveFault(m Meta, f *turbulencev1.Fault, to turbulencev1.FaultState, reason string) {
	f.State = to
	if reason != "" {
		f.Reason = reason
	}
	if Ended(to) {
		f.EndedAt = timestamppb.New(m.Time)
	}
	d.appendEvent(m.Time, stateEvents[to], f.GetAgentId(), f.GetId(), reason)
}
