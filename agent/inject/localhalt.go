package inject

import (
	"errors"
	"fmt"
	"time"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// ReasonLocalHalt is the end reason of faults reverted by
// `turbulence-agent halt` on the host itself.
const ReasonLocalHalt = "local halt"

// ErrHaltedLocally refuses a fault while the agent is halted on its host.
// It is wrapped with the host, the operator's reason and what to do.
var ErrHaltedLocally = errors.New("agent halted locally")

// LocalHalt is a halt ordered on the host (`turbulence-agent halt`).
//
// It is a flag of its own, separate from the fleet halt (Halt/Resume):
// the person at the host and the fleet's operators each lift only their own
// halt. A controller's ResumeAgent, or a Welcome with halted=false, must
// never undo a halt the host's operator ordered, and a local resume must
// never undo a fleet halt that lives in raft (invariant 5).
type LocalHalt struct {
	// Host is the host name, quoted to whoever is refused.
	Host string
	// Reason is the operator's text; may be empty.
	Reason string
	// Since is when the halt was ordered.
	Since time.Time
}

// refusal is the error Apply returns while the halt holds.
func (h *LocalHalt) refusal() error {
	reason := h.Reason
	if reason == "" {
		reason = "no reason given"
	}
	return fmt.Errorf("%w on %s: %s; run turbulence-agent resume there", ErrHaltedLocally, h.Host, reason)
}

// HaltLocally refuses every later Apply until ResumeLocally, reverts every
// held fault at once with reason ReasonLocalHalt, and returns the final
// status of each fault it reverted (invariant 5: the kill switch works on
// the host with no controller). A zero h.Since means now. Halting an agent
// that is already halted locally keeps the first halt's reason and time
// and reverts whatever is left.
func (m *Manager) HaltLocally(h LocalHalt) []*turbulencev1.FaultStatus {
	if h.Since.IsZero() {
		h.Since = time.Now()
	}
	m.mu.Lock()
	if m.local == nil {
		m.local = &h
	}
	// The flag and the list of faults to end are taken under one lock: an
	// Apply that registers after this point is refused, and one that
	// registered before is in ids (if its injector is still running, end
	// makes Apply revert it the moment the injector returns).
	ids := m.heldIDsLocked()
	m.mu.Unlock()
	m.endAll(ids, ReasonLocalHalt)
	out := make([]*turbulencev1.FaultStatus, 0, len(ids))
	for _, id := range ids {
		// nil when the injector's Apply failed while we waited: nothing was
		// ever left, so there is nothing to report as reverted.
		if st := m.endedStatus(id); st != nil {
			out = append(out, st)
		}
	}
	sortByID(out)
	m.log.Warn("local halt: reverted every fault, new faults refused until a local resume", "reason", h.Reason, "count", len(out))
	return out
}

// ResumeLocally lifts a local halt and reports whether there was one. A
// fleet halt, if any, still holds.
func (m *Manager) ResumeLocally() bool {
	m.mu.Lock()
	was := m.local != nil
	m.local = nil
	m.mu.Unlock()
	if was {
		m.log.Info("local halt lifted")
	}
	return was
}

// LocalHalt returns the local halt, if the agent is halted locally.
func (m *Manager) LocalHalt() (LocalHalt, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.local == nil {
		return LocalHalt{}, false
	}
	return *m.local, true
}

// LocallyHalted reports whether the agent is halted locally; the session
// sends it in Hello and in every heartbeat so the fleet view shows it.
func (m *Manager) LocallyHalted() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.local != nil
}

// HeldKinds returns the kind of every held fault, by fault ID, for the
// local status command (FaultStatus carries no kind).
func (m *Manager) HeldKinds() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]string, len(m.held))
	for id, e := range m.held {
		out[id] = e.kind
	}
	return out
}

// refusalLocked returns why Apply must refuse a new fault now, or nil.
// Caller holds m.mu. A local halt is named first: it is the one the
// controller's operators cannot lift, so they need to know whom to ask.
func (m *Manager) refusalLocked() error {
	switch {
	case m.closed:
		return ErrStopping
	case m.unrecovered != nil:
		return fmt.Errorf("%w: %w", ErrUnrecovered, m.unrecovered)
	case m.local != nil:
		return m.local.refusal()
	case m.halted:
		return ErrHalted
	}
	return nil
}
