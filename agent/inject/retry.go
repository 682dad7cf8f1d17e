package inject

import (
	"errors"
	"time"
)

// Backoff of the revert retries: soon after the first failure, since a
// revert usually fails on something passing (a busy netlink socket, a
// worker slow to die), then no more than twice a minute.
const (
	retryFirst = time.Second
	retryMax   = 30 * time.Second
)

// ErrRevertFailed wraps a revert that did not take the fault back. The
// fault stays held and REVERTING, and the agent keeps retrying.
var ErrRevertFailed = errors.New("revert failed")

// retryRevert retries e's revert until it succeeds or the Manager closes.
//
// Invariant 1: a fault is only reported gone once it is gone. A revert
// that failed is retried here with backoff; when the Manager closes first
// (the agent stopping), the journal record stays open, so that
// `turbulence-agent cleanup` and the next start-up replay take it back
// (invariant 3).
func (m *Manager) retryRevert(e *entry) {
	defer m.watchers.Done()
	wait := retryFirst
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case <-m.stopRetries:
			m.mu.Lock()
			err := e.revertErr
			m.mu.Unlock()
			m.log.Error("agent stopping with a fault it could not revert; the journal keeps it for cleanup and the next start",
				"fault_id", e.id, "kind", e.kind, "err", err)
			return
		case <-timer.C:
		}
		if err := m.tryRevert(e); err != nil {
			wait = min(2*wait, retryMax)
			m.log.Error("revert failed again; retrying", "fault_id", e.id, "kind", e.kind, "err", err, "next_attempt_in", wait)
			timer.Reset(wait)
			continue
		}
		m.mu.Lock()
		reason := e.reason
		m.mu.Unlock()
		m.finishRevert(e, reason)
		return
	}
}
