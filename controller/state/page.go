package state

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/turbulence-sre/turbulence/internal/faultspec"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Paged reads. Each returns at most n records after a cursor, in the
// list's order, and whether more follow; the API turns the last record's
// key into the next page token (controlapi/page.go). Only the records of
// the page are copied, so a page costs a sort of keys, not a copy of the
// whole state.

// AgentsPage returns up to n agents with an ID greater than after, by ID,
// that keep accepts (nil keeps every agent). keep runs under the state's
// read lock on the stored record: it must only read it. more is true when
// at least one more kept agent follows the page, so a filtered list never
// ends on an empty page.
func (s *State) AgentsPage(after string, n int, keep func(*turbulencev1.Agent) bool) (page []*turbulencev1.Agent, more bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ids := s.d.agentIDs
	i, found := slices.BinarySearch(ids, after)
	if found {
		i++
	}
	if keep == nil {
		ids = ids[i:]
		if len(ids) > n {
			ids, more = ids[:n], true
		}
		page = make([]*turbulencev1.Agent, len(ids))
		for j, id := range ids {
			page[j] = clone(s.d.agents[id])
		}
		return page, more
	}
	for _, id := range ids[i:] {
		a := s.d.agents[id]
		if !keep(a) {
			continue
		}
		if len(page) == n {
			return page, true
		}
		page = append(page, clone(a))
	}
	return page, false
}

// FaultCursor is the position of a fault in the list's order: creation
// time, then ID.
type FaultCursor struct {
	CreatedAt time.Time
	ID        string
}

// Zero reports whether the cursor is the start of the list.
func (c FaultCursor) Zero() bool { return c.ID == "" && c.CreatedAt.IsZero() }

func faultKey(f *turbulencev1.Fault) FaultCursor {
	return FaultCursor{CreatedAt: f.GetCreatedAt().AsTime(), ID: f.GetId()}
}

func compareFaultCursor(a, b FaultCursor) int {
	if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

// matches reports whether a fault passes the filter.
func (f FaultFilter) matches(fault *turbulencev1.Fault) bool {
	switch {
	case f.AgentID != "" && fault.GetAgentId() != f.AgentID,
		f.ActiveOnly && Ended(fault.GetState()),
		f.State != turbulencev1.FaultState_FAULT_STATE_UNSPECIFIED && fault.GetState() != f.State,
		f.Kind != "" && faultspec.Kind(fault.GetSpec()) != f.Kind:
		return false
	case f.Since.IsZero() && f.Until.IsZero():
		// Every page visits every fault: skip the time conversion.
		return true
	}
	t := fault.GetCreatedAt().AsTime()
	return (f.Since.IsZero() || !t.Before(f.Since)) && (f.Until.IsZero() || t.Before(f.Until))
}

// FaultsPage returns up to n faults that match f and come after the
// cursor, oldest first. It starts at the cursor in the faults' index, so
// a page costs the faults it passes over, not the whole history.
func (s *State) FaultsPage(f FaultFilter, after FaultCursor, n int) (page []*turbulencev1.Fault, more bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	order := s.d.faultOrder
	i := 0
	if !after.Zero() {
		i, _ = slices.BinarySearchFunc(order, after, func(fault *turbulencev1.Fault, c FaultCursor) int {
			return compareFaultCursor(faultKey(fault), c)
		})
		if i < len(order) && compareFaultCursor(faultKey(order[i]), after) == 0 {
			i++
		}
	}
	for _, fault := range order[i:] {
		if !f.matches(fault) {
			continue
		}
		if len(page) == n {
			return page, true
		}
		page = append(page, clone(fault))
	}
	return page, false
}

// indexFault inserts a new fault into the creation-order index. Faults
// arrive in creation order but for leader clock steps, so this is an
// append but for those.
func (d *data) indexFault(f *turbulencev1.Fault) {
	i, _ := slices.BinarySearchFunc(d.faultOrder, faultKey(f), func(x *turbulencev1.Fault, c FaultCursor) int {
		return compareFaultCursor(faultKey(x), c)
	})
	d.faultOrder = slices.Insert(d.faultOrder, i, f)
}

// indexAgent inserts a new agent's ID into the sorted index.
func (d *data) indexAgent(id string) {
	if i, found := slices.BinarySearch(d.agentIDs, id); !found {
		d.agentIDs = slices.Insert(d.agentIDs, i, id)
	}
}

// rebuildIndexes makes the indexes of a dataset built from a snapshot.
func (d *data) rebuildIndexes() {
	d.agentIDs = sortedKeys(d.agents)
	d.faultOrder = make([]*turbulencev1.Fault, 0, len(d.faults))
	for _, f := range d.faults {
		d.faultOrder = append(d.faultOrder, f)
	}
	slices.SortFunc(d.faultOrder, func(a, b *turbulencev1.Fault) int { return compareFaultCursor(faultKey(a), faultKey(b)) })
}

// EventFilter selects events. The zero value selects all of them.
type EventFilter struct {
	AgentID string
	// Type keeps events of this type, or of every type under it when it
	// ends with a dot ("fault.").
	Type         string
	Since, Until time.Time
}

func (f EventFilter) matches(e *turbulencev1.Event) bool {
	if f.AgentID != "" && e.GetAgentId() != f.AgentID {
		return false
	}
	if f.Type != "" && e.GetType() != f.Type {
		// "fault." selects the whole family.
		family := strings.HasSuffix(f.Type, ".") && strings.HasPrefix(e.GetType(), f.Type)
		if !family {
			return false
		}
	}
	t := e.GetTime().AsTime()
	return (f.Since.IsZero() || !t.Before(f.Since)) && (f.Until.IsZero() || t.Before(f.Until))
}

// EventsPage returns up to n events that match f with a sequence number
// greater than after, oldest first.
func (s *State) EventsPage(f EventFilter, after uint64, n int) (page []*turbulencev1.Event, more bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for e := range s.d.events.from(s.d.events.after(after)) {
		if !f.matches(e) {
			continue
		}
		if len(page) == n {
			return page, true
		}
		page = append(page, clone(e))
	}
	return page, false
}

// AuditPage returns up to f.Limit records that match f with a sequence
// number below before (0: from the newest), newest first.
func (s *State) AuditPage(f AuditFilter, before uint64) (page []*turbulencev1.AuditEntry, more bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for i := len(s.d.audit) - 1; i >= 0; i-- {
		e := s.d.audit[i]
		if before != 0 && e.GetSequence() >= before {
			continue
		}
		if !f.matches(e) {
			continue
		}
		if len(page) == f.Limit {
			return page, true
		}
		page = append(page, clone(e))
	}
	return page, false
}
