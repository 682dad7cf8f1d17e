package inject

import "time"

// EndOverdue ends, for ReasonDeadline, every held fault whose deadline is
// not after now and whose end has not begun, and returns how many it
// ended. It blocks while it reverts them.
//
// Each fault's own timer ends it at its deadline (invariant 1); this is
// the enforcement loop's backstop (agent/killswitch.Enforce) should a
// timer ever not fire, and, because it takes the Manager's lock, the proof
// the loop gives systemd's watchdog that the Manager can still end faults.
// Ending is idempotent, so racing a timer that does fire is harmless.
func (m *Manager) EndOverdue(now time.Time) int {
	m.mu.Lock()
	var ids []string
	for id, e := range m.held {
		// handle == nil: Apply is still running and reverts as soon as it
		// returns once the fault is marked ending; end handles that too.
		if !e.ending && !e.deadline.After(now) {
			ids = append(ids, id)
		}
	}
	m.mu.Unlock()
	for _, id := range ids {
		m.log.Warn("fault past its deadline ended by the enforcement loop", "fault_id", id)
		<-m.end(id, ReasonDeadline)
	}
	return len(ids)
}
