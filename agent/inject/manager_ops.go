package inject

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/turbulence-sre/turbulence/internal/limits"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Revert takes fault id back for reason and returns its final status. It
// is idempotent: a fault that already ended returns its recorded status,
// and an unknown one returns a REVERTED status saying it is not held
// (docs/protocol.md §2: the agent answers ok even if it does not hold it).
func (m *Manager) Revert(ctx context.Context, id, reason string) (*turbulencev1.FaultStatus, error) {
	m.mu.Lock()
	_, held := m.held[id]
	st, ended := m.ended[id]
	m.mu.Unlock()
	switch {
	case held:
	case ended:
		return proto.CloneOf(st), nil
	default:
		return &turbulencev1.FaultStatus{FaultId: id, State: turbulencev1.FaultState_FAULT_STATE_REVERTED, Reason: "not held by this agent"}, nil
	}
	done := m.end(id, reason)
	select {
	case <-done:
	case <-ctx.Done():
		// The revert goes on without us; it is reported when it ends.
		return nil, ctx.Err()
	}
	if st := m.endedStatus(id); st != nil {
		return st, nil
	}
	m.mu.Lock()
	e, stuck := m.held[id]
	m.mu.Unlock()
	if stuck {
		// The revert failed and is being retried: the fault is still on
		// the host, so this is not a success (the controller keeps it
		// REVERTING until a heartbeat reports it ended).
		st := m.observe(e)
		return st, fmt.Errorf("%w: %s", ErrRevertFailed, st.GetReason())
	}
	// Apply failed while we waited: nothing was ever left.
	return &turbulencev1.FaultStatus{FaultId: id, State: turbulencev1.FaultState_FAULT_STATE_REVERTED, Reason: reason}, nil
}

// RevertAll reverts every held fault for reason, in parallel, and returns
// once each has ended. It returns how many faults it ended.
func (m *Manager) RevertAll(reason string) int {
	m.mu.Lock()
	ids := m.heldIDsLocked()
	m.mu.Unlock()
	m.endAll(ids, reason)
	if len(ids) > 0 {
		m.log.Warn("reverted every fault", "reason", reason, "count", len(ids))
	}
	return len(ids)
}

// heldIDsLocked lists the held fault IDs. Caller holds m.mu.
func (m *Manager) heldIDsLocked() []string {
	ids := make([]string, 0, len(m.held))
	for id := range m.held {
		ids = append(ids, id)
	}
	return ids
}

// endAll ends every fault in ids for reason, in parallel, and returns once
// each has ended. In parallel: with N workers, N × the SIGTERM grace in
// sequence could outlast a systemd stop timeout.
func (m *Manager) endAll(ids []string, reason string) {
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() { <-m.end(id, reason) })
	}
	wg.Wait()
}

// Halt reverts every fault (reason "halt") and refuses new ones until
// Resume (invariant 5). It is the fleet halt, ordered by the controller; a
// local halt (HaltLocally) is a separate flag that Resume leaves alone.
func (m *Manager) Halt() {
	m.mu.Lock()
	m.halted = true
	m.mu.Unlock()
	m.RevertAll(ReasonHalt)
}

// Resume lifts a Halt, not a local halt.
func (m *Manager) Resume() {
	m.mu.Lock()
	m.halted = false
	m.mu.Unlock()
}

// Halted reports whether the Manager refuses new faults because of a halt.
func (m *Manager) Halted() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.halted
}

// Close refuses every later Apply, reverts every fault for reason and
// returns once every fault has ended and every worker has been waited for
// (invariant 3: stopping the service reverts everything before exit).
func (m *Manager) Close(reason string) {
	m.mu.Lock()
	alreadyClosed := m.closed
	m.closed = true
	m.mu.Unlock()
	m.RevertAll(reason)
	if !alreadyClosed {
		// What still fails to revert is left to the journal (retry.go).
		close(m.stopRetries)
	}
	// An Apply that was running when closed was set has registered its
	// fault and reverts it when it returns; RevertAll waited for it.
	m.watchers.Wait()
}

// Held returns the status of every fault the agent holds, sorted by ID,
// with fresh measurements.
func (m *Manager) Held() []*turbulencev1.FaultStatus {
	m.mu.Lock()
	entries := make([]*entry, 0, len(m.held))
	for _, e := range m.held {
		if e.handle != nil {
			entries = append(entries, e)
		}
	}
	m.mu.Unlock()
	out := make([]*turbulencev1.FaultStatus, 0, len(entries))
	for _, e := range entries {
		out = append(out, m.observe(e))
	}
	sortByID(out)
	return out
}

// Report returns what a heartbeat carries: the held faults and the oldest
// faults that ended and were not yet acknowledged, no more in all than one
// heartbeat may list (internal/limits.MaxHeldFaults; the rest follow in the
// next ones). Pass mark to AckEnded once the heartbeat was sent, so that
// ended faults travel until one gets through.
func (m *Manager) Report() (held, ended []*turbulencev1.FaultStatus, mark uint64) {
	held = m.Held()
	m.mu.Lock()
	defer m.mu.Unlock()
	room := max(limits.MaxHeldFaults-len(held), 0)
	for _, r := range m.unreported[:min(room, len(m.unreported))] {
		ended = append(ended, proto.CloneOf(r.status))
		mark = r.seq
	}
	return held, ended, mark
}

// AckEnded forgets the ended faults reported up to mark.
func (m *Manager) AckEnded(mark uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := 0
	for i < len(m.unreported) && m.unreported[i].seq <= mark {
		i++
	}
	m.unreported = m.unreported[i:]
}

// Faults returns the held faults then every remembered ended one, for
// tests and the local status command.
func (m *Manager) Faults() []*turbulencev1.FaultStatus {
	out := m.Held()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range m.endedFIFO {
		out = append(out, proto.CloneOf(m.ended[id]))
	}
	return out
}

func sortByID(s []*turbulencev1.FaultStatus) {
	slices.SortFunc(s, func(a, b *turbulencev1.FaultStatus) int { return strings.Compare(a.GetFaultId(), b.GetFaultId()) })
}
