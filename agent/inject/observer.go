package inject

import "time"

// Observer is told of the faults the Manager applies and ends, for the
// agent's metrics (agent/metrics.go). Its methods are called outside the
// Manager's lock, on the goroutine that applied or reverted the fault;
// they must be quick and must not call back into the Manager.
type Observer interface {
	// FaultApplied: a fault of kind is on the host.
	FaultApplied(kind string)
	// FaultEnded: a fault of kind was taken back for reason (as reported
	// to the controller). deadline is the one its revert timer was armed
	// for, endedAt when it was really taken back (by the agent, or by its
	// guardian): for a fault ended by its deadline, the difference is how
	// late the revert came.
	FaultEnded(kind, reason string, deadline, endedAt time.Time)
}

type noObserver struct{}

func (noObserver) FaultApplied(string)                             {}
func (noObserver) FaultEnded(string, string, time.Time, time.Time) {}

// Observe makes the Manager tell o of every fault applied and ended from
// now on. Call it before the first Apply.
func (m *Manager) Observe(o Observer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.observer = o
}

func (m *Manager) obs() Observer {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.observer == nil {
		return noObserver{}
	}
	return m.observer
}
