package state

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// EventStatePruned is the event a prune that removed anything records.
const EventStatePruned = "state.pruned"

// Retention says how much history the state keeps (docs/operations.md,
// Retention). Zero fields keep everything of their kind.
type Retention struct {
	// EndedFaultAge: an ended fault (REVERTED or FAILED) is removed once
	// it ended longer ago than this.
	EndedFaultAge time.Duration
	// MaxEndedFaults: at most this many ended faults are kept, those that
	// ended first are removed first.
	MaxEndedFaults int
	// DepartedAgentAge: an agent the leader has not heard from for this
	// long is removed, once it also last registered longer ago than this
	// and holds no fault that is not ended.
	DepartedAgentAge time.Duration
}

// Prune is one prune entry: the policy, and the agents the leader has
// not heard from for DepartedAgentAge (only the leader knows who is
// connected; the state checks the rest).
type Prune struct {
	Retention
	DepartedAgentIDs []string
}

// PruneResult counts what a prune removed, or would remove.
type PruneResult struct {
	Faults, Groups, Agents int
}

// Zero reports whether the prune removes nothing.
func (r PruneResult) Zero() bool { return r == PruneResult{} }

func (r PruneResult) String() string {
	return fmt.Sprintf("%d ended faults, %d ended fault groups, %d departed agents", r.Faults, r.Groups, r.Agents)
}

// ApplyPrune removes what p no longer keeps, judged at the entry's time
// (m.Time), so that every replica removes the same records. A fault that
// is not ended (PENDING, ACTIVE, REVERTING, UNCONFIRMED) is never removed,
// nor an agent that holds one, nor a group with such a member. A group
// goes once none of its members' faults is left.
//
// The audit log is not pruned here: it keeps its own bound
// (MaxAuditEntries), and the entry that prunes is itself audited by its
// proposer.
func (s *State) ApplyPrune(m Meta, p Prune) (PruneResult, error) {
	if p.EndedFaultAge < 0 || p.MaxEndedFaults < 0 || p.DepartedAgentAge < 0 {
		return PruneResult{}, errorf(ErrInvalidEntry, "prune: negative retention (ended fault age %s, max ended faults %d, departed agent age %s)",
			p.EndedFaultAge, p.MaxEndedFaults, p.DepartedAgentAge)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	faults, groups, agents := s.d.prunable(m.Time, p)
	res := PruneResult{Faults: len(faults), Groups: len(groups), Agents: len(agents)}
	if res.Zero() {
		return res, nil
	}
	for id := range faults {
		delete(s.d.faults, id)
	}
	s.d.faultOrder = slices.DeleteFunc(s.d.faultOrder, func(f *turbulencev1.Fault) bool { return faults[f.GetId()] })
	for id := range groups {
		delete(s.d.groups, id)
	}
	s.d.groupOrder = slices.DeleteFunc(s.d.groupOrder, func(g *turbulencev1.FaultGroup) bool { return groups[g.GetId()] })
	for id := range agents {
		delete(s.d.agents, id)
	}
	s.d.agentIDs = slices.DeleteFunc(s.d.agentIDs, func(id string) bool { return agents[id] })
	s.d.appendEvent(m.Time, EventStatePruned, "", "", "retention removed "+res.String())
	s.notifyLocked()
	return res, nil
}

// PlanPrune counts what ApplyPrune would remove at now, changing nothing.
// The leader asks it before proposing, so that an idle cluster writes no
// empty prune entries.
func (s *State) PlanPrune(now time.Time, p Prune) PruneResult {
	s.mu.RLock()
	defer s.mu.RUnlock()
	faults, groups, agents := s.d.prunable(now, p)
	return PruneResult{Faults: len(faults), Groups: len(groups), Agents: len(agents)}
}

// prunable returns the IDs of the faults, groups and agents that p
// removes at now. It only reads.
func (d *data) prunable(now time.Time, p Prune) (faults, groups, agents map[string]bool) {
	faults, groups, agents = map[string]bool{}, map[string]bool{}, map[string]bool{}
	var ended []*turbulencev1.Fault
	live := map[string]bool{} // agents holding a fault that is not ended
	for _, f := range d.faultOrder {
		if Ended(f.GetState()) {
			ended = append(ended, f)
		} else {
			live[f.GetAgentId()] = true
		}
	}
	// Oldest end first, ties by ID: the same order on every replica.
	slices.SortFunc(ended, func(a, b *turbulencev1.Fault) int {
		if c := a.GetEndedAt().AsTime().Compare(b.GetEndedAt().AsTime()); c != 0 {
			return c
		}
		return strings.Compare(a.GetId(), b.GetId())
	})
	drop := 0
	if p.EndedFaultAge > 0 {
		cut := now.Add(-p.EndedFaultAge)
		drop, _ = slices.BinarySearchFunc(ended, cut, func(f *turbulencev1.Fault, t time.Time) int {
			return cmp.Compare(f.GetEndedAt().AsTime().UnixNano(), t.UnixNano())
		})
	}
	if p.MaxEndedFaults > 0 && len(ended)-drop > p.MaxEndedFaults {
		drop = len(ended) - p.MaxEndedFaults
	}
	for _, f := range ended[:drop] {
		faults[f.GetId()] = true
	}
	for _, g := range d.groupOrder {
		if !slices.ContainsFunc(g.GetMembers(), func(mem *turbulencev1.GroupMember) bool {
			_, kept := d.faults[mem.GetFaultId()]
			return Chosen(mem) && kept && !faults[mem.GetFaultId()]
		}) {
			groups[g.GetId()] = true
		}
	}
	if p.DepartedAgentAge > 0 {
		cut := now.Add(-p.DepartedAgentAge)
		for _, id := range p.DepartedAgentIDs {
			a, ok := d.agents[id]
			if !ok || live[id] {
				continue
			}
			last := a.GetLastRegisteredAt()
			if last == nil {
				last = a.GetRegisteredAt() // recorded before last_registered_at existed
			}
			if last.AsTime().Before(cut) {
				agents[id] = true
			}
		}
	}
	return faults, groups, agents
}
