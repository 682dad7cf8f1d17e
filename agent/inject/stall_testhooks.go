//go:build turbulence_testhooks

package inject

// StallForTest takes the Manager's lock and never gives it back, as a
// deadlock would: nothing can end a fault any more. It exists in builds
// with the turbulence_testhooks tag only (agent/testhooks_on.go).
func (m *Manager) StallForTest() { m.mu.Lock() }
