package state

import (
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// HaltReason is the reason recorded on faults that a fleet halt reverts.
const HaltReason = "halt"

// ApplySetHalt raises or lowers the fleet halt flag.
//
// Invariant 5: raising it moves every PENDING or ACTIVE fault to
// REVERTING in the same entry, so no replica, and no future leader, can
// see the flag without also seeing that those faults must go. Halting an
// already halted fleet keeps who halted it first and when.
func (s *State) ApplySetHalt(m Meta, halted bool, reason string) (*turbulencev1.HaltStatus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.d.applied[m.RequestID]; ok && m.RequestID != "" {
		return clone(s.d.halt), nil
	}
	was := s.d.halt.GetHalted()
	switch {
	case halted && !was:
		s.d.halt = &turbulencev1.HaltStatus{Halted: true, Reason: reason, By: m.Actor, Since: timestamppb.New(m.Time)}
		s.d.appendEvent(m.Time, EventFleetHalted, "", "", haltMessage(m.Actor, reason))
	case !halted && was:
		s.d.halt = &turbulencev1.HaltStatus{Halted: false, Reason: reason, By: m.Actor, Since: timestamppb.New(m.Time)}
		s.d.appendEvent(m.Time, EventFleetResumed, "", "", "resumed by "+m.Actor)
	}
	if halted {
		s.d.revertLiveFaults(m)
	}
	s.d.remember(m.RequestID, "halt")
	s.notifyLocked()
	return clone(s.d.halt), nil
}

func haltMessage(actor, reason string) string {
	if reason == "" {
		return "halted by " + actor
	}
	return "halted by " + actor + ": " + reason
}

// revertLiveFaults moves every PENDING or ACTIVE fault to REVERTING.
// UNCONFIRMED faults are left as they are: their agent is out of reach
// and has taken them back by its lease (invariant 2); its report, when it
// returns, says how they ended, which a halt reason would hide.
// Faults are visited in ID order: map order is random and the event
// sequence numbers must come out the same on every replica.
func (d *data) revertLiveFaults(m Meta) {
	ids := make([]string, 0, len(d.faults))
	for id, f := range d.faults {
		if st := f.GetState(); st == turbulencev1.FaultState_FAULT_STATE_PENDING || st == turbulencev1.FaultState_FAULT_STATE_ACTIVE {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		d.moveFault(m, d.faults[id], turbulencev1.FaultState_FAULT_STATE_REVERTING, HaltReason, time.Time{})
	}
}
