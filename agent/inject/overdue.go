package inject

import "time"

// overdueWarnAfter is how late past its deadline a fault must be before
// the enforcement loop's ending it is logged as a missed timer.
const overdueWarnAfter = 100 * time.Millisecond

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
	type overdue struct {
		id string
		by time.Duration
	}
	var due []overdue
	for id, e := range m.held {
		// handle == nil: Apply is still running and reverts as soon as it
		// returns once the fault is marked ending; end handles that too.
		if !e.ending && !e.deadline.After(now) {
			due = append(due, overdue{id, now.Sub(e.deadline)})
		}
	}
	m.mu.Unlock()
	for _, d := range due {
		// A tick that lands on the deadline itself races the fault's own
		// timer, which was about to end it: only a fault the timer really
		// missed is worth a warning.
		if d.by > overdueWarnAfter {
			m.log.Warn("fault past its deadline ended by the enforcement loop", "fault_id", d.id, "overdue", d.by)
		}
		<-m.end(d.id, ReasonDeadline)
	}
	return len(due)
}
