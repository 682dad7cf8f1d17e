package state

import (
	"cmp"
	"slices"
	"time"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Agent returns a copy of one agent.
func (s *State) Agent(id string) (*turbulencev1.Agent, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	a, ok := s.d.agents[id]
	if !ok {
		return nil, false
	}
	return clone(a), true
}

// Agents returns copies of every agent, sorted by ID.
func (s *State) Agents() []*turbulencev1.Agent {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*turbulencev1.Agent, 0, len(s.d.agents))
	for _, a := range s.d.agents {
		out = append(out, clone(a))
	}
	slices.SortFunc(out, func(a, b *turbulencev1.Agent) int { return cmp.Compare(a.GetId(), b.GetId()) })
	return out
}

// Fault returns a copy of one fault.
func (s *State) Fault(id string) (*turbulencev1.Fault, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	f, ok := s.d.faults[id]
	if !ok {
		return nil, false
	}
	return clone(f), true
}

// FaultFilter selects faults. The zero value selects all of them.
type FaultFilter struct {
	// AgentID, when set, keeps only that agent's faults.
	AgentID string
	// ActiveOnly keeps only faults that are not ended.
	ActiveOnly bool
	// State, when set, keeps only faults in that state.
	State turbulencev1.FaultState
	// Kind, when set, keeps only faults of that kind ("cpu"…).
	Kind string
	// Since and Until, when not zero, keep faults created at Since or
	// later and before Until.
	Since, Until time.Time
}

// Faults returns copies of the faults that match, oldest first.
func (s *State) Faults(f FaultFilter) []*turbulencev1.Fault {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*turbulencev1.Fault
	for _, fault := range s.d.faults {
		if f.matches(fault) {
			out = append(out, clone(fault))
		}
	}
	slices.SortFunc(out, func(a, b *turbulencev1.Fault) int {
		if c := a.GetCreatedAt().AsTime().Compare(b.GetCreatedAt().AsTime()); c != 0 {
			return c
		}
		return cmp.Compare(a.GetId(), b.GetId())
	})
	return out
}

// Halt returns a copy of the fleet halt status.
func (s *State) Halt() *turbulencev1.HaltStatus {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return clone(s.d.halt)
}

// Events returns copies of the events with a sequence number greater than
// after, oldest first, at most limit of them (0 means no limit).
func (s *State) Events(after uint64, limit int) []*turbulencev1.Event {
	s.mu.RLock()
	defer s.mu.RUnlock()
	// Sequence numbers grow through the kept window, so the first
	// wanted event is found by binary search.
	i := s.d.events.after(after)
	n := s.d.events.len() - i
	if limit > 0 && n > limit {
		n = limit
	}
	out := make([]*turbulencev1.Event, 0, n)
	for e := range s.d.events.from(i) {
		if len(out) == n {
			break
		}
		out = append(out, clone(e))
	}
	return out
}

// LastSequence is the sequence number of the latest event, 0 if none.
func (s *State) LastSequence() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.d.nextSeq - 1
}

// AppliedResult returns what an already applied request produced.
func (s *State) AppliedResult(requestID string) (resultID string, ok bool) {
	if requestID == "" {
		return "", false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	resultID, ok = s.d.applied[requestID]
	return resultID, ok
}

// AgentIDs returns the IDs of every registered agent, sorted.
func (s *State) AgentIDs() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.d.agentIDs)
}

// Counts is the number of records of each kind the state holds: what
// retention bounds.
type Counts struct {
	Agents, Faults, EndedFaults, Groups int
}

// Count returns the state's record counts.
func (s *State) Count() Counts {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c := Counts{Agents: len(s.d.agents), Faults: len(s.d.faults), Groups: len(s.d.groups)}
	for _, f := range s.d.faults {
		if Ended(f.GetState()) {
			c.EndedFaults++
		}
	}
	return c
}
