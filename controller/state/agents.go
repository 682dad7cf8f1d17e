package state

import (
	"google.golang.org/protobuf/types/known/timestamppb"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// ApplyRegisterAgent records an agent or refreshes its labels, facts and
// capabilities. The first registration time is kept across reconnects.
// Soft liveness fields (connected, last_seen, locally_halted) are never
// stored: they live on the leader only and would otherwise turn every
// heartbeat into a raft write.
func (s *State) ApplyRegisterAgent(m Meta, a *turbulencev1.Agent) (*turbulencev1.Agent, error) {
	if a.GetId() == "" {
		return nil, errorf(ErrInvalidEntry, "register agent: agent id is required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if id, ok := s.d.applied[m.RequestID]; ok && m.RequestID != "" {
		if prev, ok := s.d.agents[id]; ok {
			return clone(prev), nil
		}
	}
	rec := clone(a)
	rec.Connected = false
	rec.LastSeen = nil
	rec.LocallyHalted = false
	rec.LastRegisteredAt = timestamppb.New(m.Time)
	msg := "registered"
	if prev, ok := s.d.agents[a.GetId()]; ok {
		rec.RegisteredAt = prev.GetRegisteredAt()
		msg = "registered again"
	} else {
		rec.RegisteredAt = timestamppb.New(m.Time)
	}
	s.d.agents[rec.GetId()] = rec
	s.d.indexAgent(rec.GetId())
	s.d.remember(m.RequestID, rec.GetId())
	s.d.appendEvent(m.Time, EventAgentRegistered, rec.GetId(), "", msg)
	s.notifyLocked()
	return clone(rec), nil
}
