package state

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/turbulence-sre/turbulence/internal/faultspec"
	"github.com/turbulence-sre/turbulence/internal/limits"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Chosen reports whether a group member was chosen (it carries a fault)
// rather than refused.
func Chosen(m *turbulencev1.GroupMember) bool { return m.GetRefusal() == "" }

// ApplyCreateFaultGroup records a fault group and every one of its member
// faults, or nothing at all (docs/groups.md: never half a group). Each
// chosen member becomes a PENDING fault made from the group's spec, with
// the group's creation time and author, and the deadline creation time +
// the spec's duration (invariant 1), so that every replica makes the same
// faults from the same entry. A request ID seen before returns the group
// it created then: a retry, also through another controller after a
// leader change, never makes a second group.
func (s *State) ApplyCreateFaultGroup(m Meta, g *turbulencev1.FaultGroup) (*turbulencev1.FaultGroup, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id, ok := s.d.applied[m.RequestID]; ok && m.RequestID != "" {
		if prev, ok := s.d.groups[id]; ok {
			return s.d.readGroup(prev), nil
		}
	}
	if err := s.d.checkNewGroup(g); err != nil {
		return nil, err
	}
	rec := clone(g)
	if rec.CreatedAt == nil {
		rec.CreatedAt = timestamppb.New(m.Time)
	}
	if rec.CreatedBy == "" {
		rec.CreatedBy = m.Actor
	}
	created := rec.GetCreatedAt().AsTime()
	deadline := timestamppb.New(created.Add(rec.GetSpec().GetDuration().AsDuration()))
	msg := fmt.Sprintf("%s fault for %s by %s in group %s", faultspec.Kind(rec.GetSpec()), rec.GetSpec().GetDuration().AsDuration(), rec.GetCreatedBy(), rec.GetId())
	// The members share one creation time, so the creation-order index
	// sorts them by ID: made in that order, each one lands at the end of
	// the index instead of in its middle (a thousand members would
	// otherwise each move the tail of a long index).
	byFault := slices.Clone(rec.GetMembers())
	slices.SortFunc(byFault, func(a, b *turbulencev1.GroupMember) int { return strings.Compare(a.GetFaultId(), b.GetFaultId()) })
	for _, mem := range byFault {
		// What is read back from the fault is never stored twice.
		mem.State, mem.Reason, mem.MeasuredCpuPercent, mem.ResidentBytes, mem.Degraded = 0, "", 0, 0, false
		if !Chosen(mem) {
			continue
		}
		f := &turbulencev1.Fault{
			Id:      mem.GetFaultId(),
			AgentId: mem.GetAgentId(),
			// Shared by the members: the state never changes a recorded
			// spec, and every read hands out a copy of the fault.
			Spec:      rec.GetSpec(),
			State:     turbulencev1.FaultState_FAULT_STATE_PENDING,
			CreatedAt: rec.GetCreatedAt(),
			Deadline:  deadline,
			CreatedBy: rec.GetCreatedBy(),
			GroupId:   rec.GetId(),
		}
		s.d.faults[f.GetId()] = f
		s.d.indexFault(f)
		s.d.appendEvent(m.Time, EventFaultCreated, f.GetAgentId(), f.GetId(), msg)
	}
	s.d.groups[rec.GetId()] = rec
	s.d.indexGroup(rec)
	s.d.remember(m.RequestID, rec.GetId())
	s.notifyLocked()
	return s.d.readGroup(rec), nil
}

// checkNewGroup refuses a group entry that would leave the state
// inconsistent. Every check comes before any change, so a refused entry
// changes nothing.
func (d *data) checkNewGroup(g *turbulencev1.FaultGroup) error {
	switch {
	case g.GetId() == "":
		return errorf(ErrInvalidEntry, "create fault group: group id is required")
	case g.GetDryRun():
		return errorf(ErrInvalidEntry, "create fault group %q: a dry run is never recorded", g.GetId())
	case g.GetSpec() == nil || g.GetSpec().GetDuration().AsDuration() <= 0:
		// Invariant 1: there is no fault without a deadline.
		return errorf(ErrInvalidEntry, "create fault group %q: spec with a positive duration is required", g.GetId())
	}
	// Invariant 5: a Halt ordered between the API's check and this entry
	// wins, for the whole group.
	if d.halt.GetHalted() {
		return errorf(ErrHalted, "fleet halted by %s: %s", d.halt.GetBy(), d.halt.GetReason())
	}
	if _, ok := d.groups[g.GetId()]; ok {
		return errorf(ErrExists, "fault group %q already exists", g.GetId())
	}
	seen := make(map[string]bool)    // fault IDs
	members := make(map[string]bool) // agent IDs: one fault per agent
	chosen := 0
	for _, mem := range g.GetMembers() {
		if !Chosen(mem) {
			continue
		}
		chosen++
		id := mem.GetFaultId()
		switch {
		case id == "" || mem.GetAgentId() == "":
			return errorf(ErrInvalidEntry, "create fault group %q: a chosen member needs an agent and a fault id", g.GetId())
		case seen[id]:
			return errorf(ErrInvalidEntry, "create fault group %q: fault id %q twice", g.GetId(), id)
		case members[mem.GetAgentId()]:
			return errorf(ErrInvalidEntry, "create fault group %q: agent %q chosen twice", g.GetId(), mem.GetAgentId())
		}
		seen[id], members[mem.GetAgentId()] = true, true
		if _, ok := d.faults[id]; ok {
			return errorf(ErrExists, "fault %q already exists", id)
		}
		if _, ok := d.agents[mem.GetAgentId()]; !ok {
			return errorf(ErrNotFound, "agent_ids: agent %q is not registered", mem.GetAgentId())
		}
	}
	if chosen == 0 {
		return errorf(ErrInvalidEntry, "create fault group %q: no member chosen", g.GetId())
	}
	return nil
}

// ApplyRevertFaultGroup moves every live member fault of a group (pending,
// active or unconfirmed) to REVERTING with reason, in one entry. Members
// already reverting or ended are left as they are. It returns the group
// as read back.
func (s *State) ApplyRevertFaultGroup(m Meta, groupID, reason string) (*turbulencev1.FaultGroup, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.d.groups[groupID]
	if !ok {
		return nil, errorf(ErrNotFound, "id: fault group %q not found", groupID)
	}
	if _, done := s.d.applied[m.RequestID]; done && m.RequestID != "" {
		return s.d.readGroup(g), nil
	}
	for _, mem := range g.GetMembers() {
		f, ok := s.d.faults[mem.GetFaultId()]
		if !ok || !Chosen(mem) {
			continue
		}
		if st := f.GetState(); Ended(st) || st == turbulencev1.FaultState_FAULT_STATE_REVERTING {
			continue
		}
		s.d.moveFault(m, f, turbulencev1.FaultState_FAULT_STATE_REVERTING, reason, time.Time{})
	}
	s.d.remember(m.RequestID, g.GetId())
	s.notifyLocked()
	return s.d.readGroup(g), nil
}

// readGroup is a copy of a stored group with each chosen member's state,
// reason and last measure read back from its fault.
func (d *data) readGroup(g *turbulencev1.FaultGroup) *turbulencev1.FaultGroup {
	out := clone(g)
	for _, mem := range out.GetMembers() {
		f, ok := d.faults[mem.GetFaultId()]
		if !ok || !Chosen(mem) {
			continue
		}
		mem.State = f.GetState()
		mem.Reason = limits.Truncate(f.GetReason(), limits.MaxRefusal)
		mem.MeasuredCpuPercent = f.GetStatus().GetMeasuredCpuPercent()
		mem.ResidentBytes = f.GetStatus().GetResidentBytes()
		mem.Degraded = f.GetStatus().GetDegraded()
	}
	return out
}

// FaultGroup returns one group with its members read back.
func (s *State) FaultGroup(id string) (*turbulencev1.FaultGroup, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	g, ok := s.d.groups[id]
	if !ok {
		return nil, false
	}
	return s.d.readGroup(g), true
}

// FaultGroupsPage returns at most n group summaries after the cursor,
// oldest first, and whether more follow.
func (s *State) FaultGroupsPage(after FaultCursor, n int) (page []*turbulencev1.FaultGroupSummary, more bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	order := s.d.groupOrder
	i := 0
	if !after.Zero() {
		var found bool
		i, found = slices.BinarySearchFunc(order, after, func(g *turbulencev1.FaultGroup, c FaultCursor) int {
			return compareFaultCursor(groupKey(g), c)
		})
		if found {
			i++
		}
	}
	for ; i < len(order); i++ {
		if len(page) == n {
			return page, true
		}
		page = append(page, s.d.summarize(order[i]))
	}
	return page, false
}

func (d *data) summarize(g *turbulencev1.FaultGroup) *turbulencev1.FaultGroupSummary {
	sum := &turbulencev1.FaultGroupSummary{
		Id: g.GetId(), Spec: clone(g.GetSpec()), Selector: g.GetSelector(), Count: g.GetCount(), Percent: g.GetPercent(),
		Seed: g.GetSeed(), CreatedAt: clone(g.GetCreatedAt()), CreatedBy: g.GetCreatedBy(),
		Matched: g.GetMatched(), Eligible: g.GetEligible(), Chosen: g.GetChosen(),
	}
	for _, mem := range g.GetMembers() {
		f, ok := d.faults[mem.GetFaultId()]
		if !ok || !Chosen(mem) {
			continue
		}
		switch f.GetState() {
		case turbulencev1.FaultState_FAULT_STATE_FAILED:
			sum.Failed++
		case turbulencev1.FaultState_FAULT_STATE_REVERTED:
			sum.Reverted++
		default:
			sum.Live++
		}
	}
	return sum
}

func groupKey(g *turbulencev1.FaultGroup) FaultCursor {
	return FaultCursor{CreatedAt: g.GetCreatedAt().AsTime(), ID: g.GetId()}
}

// indexGroup inserts a new group into the creation-order index.
func (d *data) indexGroup(g *turbulencev1.FaultGroup) {
	i, _ := slices.BinarySearchFunc(d.groupOrder, groupKey(g), func(x *turbulencev1.FaultGroup, c FaultCursor) int {
		return compareFaultCursor(groupKey(x), c)
	})
	d.groupOrder = slices.Insert(d.groupOrder, i, g)
}

func (d *data) rebuildGroupIndex() {
	d.groupOrder = make([]*turbulencev1.FaultGroup, 0, len(d.groups))
	for _, g := range d.groups {
		d.groupOrder = append(d.groupOrder, g)
	}
	slices.SortFunc(d.groupOrder, func(a, b *turbulencev1.FaultGroup) int {
		return compareFaultCursor(groupKey(a), groupKey(b))
	})
}

// ScanAgents calls fn for every registered agent, by ID, under the read
// lock and without copying: the cheap view that a group's selection over
// thousands of agents needs. fn must neither keep nor change the agent,
// and must not call back into the State.
func (s *State) ScanAgents(fn func(a *turbulencev1.Agent)) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, id := range s.d.agentIDs {
		fn(s.d.agents[id])
	}
}

// AgentCount is the number of registered agents.
func (s *State) AgentCount() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.d.agents)
}
