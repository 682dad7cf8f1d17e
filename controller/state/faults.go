package state

import (
	"fmt"
	"slices"
	"time"

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
//
// UNCONFIRMED (invariant 8: the controller never claims more than it
// knows) is entered from any live state when the agent went silent or
// came back without the fault, and left only on the agent's word: its
// report of the end (REVERTED), or its report that it still holds the
// fault, which is then taken back (REVERTING).
var transitions = map[turbulencev1.FaultState][]turbulencev1.FaultState{
	turbulencev1.FaultState_FAULT_STATE_PENDING: {
		turbulencev1.FaultState_FAULT_STATE_ACTIVE,
		turbulencev1.FaultState_FAULT_STATE_FAILED,
		turbulencev1.FaultState_FAULT_STATE_REVERTING,
		turbulencev1.FaultState_FAULT_STATE_REVERTED,
		turbulencev1.FaultState_FAULT_STATE_UNCONFIRMED,
	},
	turbulencev1.FaultState_FAULT_STATE_ACTIVE: {
		turbulencev1.FaultState_FAULT_STATE_REVERTING,
		turbulencev1.FaultState_FAULT_STATE_REVERTED,
		turbulencev1.FaultState_FAULT_STATE_UNCONFIRMED,
	},
	turbulencev1.FaultState_FAULT_STATE_REVERTING: {
		turbulencev1.FaultState_FAULT_STATE_REVERTED,
		turbulencev1.FaultState_FAULT_STATE_UNCONFIRMED,
	},
	turbulencev1.FaultState_FAULT_STATE_UNCONFIRMED: {
		turbulencev1.FaultState_FAULT_STATE_REVERTED,
		turbulencev1.FaultState_FAULT_STATE_REVERTING,
	},
}

var stateEvents = map[turbulencev1.FaultState]string{
	turbulencev1.FaultState_FAULT_STATE_ACTIVE:      EventFaultActive,
	turbulencev1.FaultState_FAULT_STATE_REVERTING:   EventFaultReverting,
	turbulencev1.FaultState_FAULT_STATE_REVERTED:    EventFaultReverted,
	turbulencev1.FaultState_FAULT_STATE_FAILED:      EventFaultFailed,
	turbulencev1.FaultState_FAULT_STATE_UNCONFIRMED: EventFaultUnconfirmed,
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
	// UnconfirmedSince is, for State UNCONFIRMED, since when the outcome
	// is unknown (the lease's end); zero means the entry's time.
	UnconfirmedSince time.Time
}

// ApplyUpdateFault moves a fault to a new state. An update to an ended
// fault is ignored and returns the fault unchanged: agents report ends
// more than once (result, heartbeat, next Hello) and that is not an error.
// An update to the state the fault is in refreshes its status only, and
// for UNCONFIRMED its reason too (what is known about why it is unknown
// can change: silent agent, then an agent back with no record of it).
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
	switch {
	case u.State != f.GetState():
		s.d.moveFault(m, f, u.State, u.Reason, u.UnconfirmedSince)
	case u.State == turbulencev1.FaultState_FAULT_STATE_UNCONFIRMED && u.Reason != "" && u.Reason != f.GetReason():
		f.Reason = u.Reason
		s.d.appendEvent(m.Time, EventFaultUnconfirmed, f.GetAgentId(), f.GetId(), u.Reason)
	}
	s.d.remember(m.RequestID, f.GetId())
	s.notifyLocked()
	return clone(f), nil
}

// moveFault changes a fault's state and records the event. The caller has
// checked that the transition is allowed. Times come from the entry only
// (m.Time, the agent's ended_at in the recorded status, unconfirmedSince
// stamped by the leader), so every replica records the same.
func (d *data) moveFault(m Meta, f *turbulencev1.Fault, to turbulencev1.FaultState, reason string, unconfirmedSince time.Time) {
	f.State = to
	if reason != "" {
		f.Reason = reason
	}
	f.UnconfirmedSince = nil
	switch {
	case Ended(to):
		// Invariant 8: the end the agent saw, when it says; the moment the
		// controller heard of it otherwise.
		f.EndedAt = timestamppb.New(m.Time)
		if at := f.GetStatus().GetEndedAt(); at != nil {
			f.EndedAt = clone(at)
		}
	case to == turbulencev1.FaultState_FAULT_STATE_UNCONFIRMED:
		if unconfirmedSince.IsZero() {
			unconfirmedSince = m.Time
		}
		f.UnconfirmedSince = timestamppb.New(unconfirmedSince)
	}
	d.appendEvent(m.Time, stateEvents[to], f.GetAgentId(), f.GetId(), reason)
}
