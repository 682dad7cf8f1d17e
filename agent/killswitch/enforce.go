package killswitch

import (
	"context"
	"time"
)

// Overdue ends the faults past their deadline; *inject.Manager is one.
type Overdue interface {
	EndOverdue(now time.Time) int
}

// Enforce is the agent's enforcement loop. Every interval it ends the
// faults past their deadline (m) and, if the lease ran out, every fault
// (l) — backstops to the timers that normally do both (invariants 1 and
// 2) — and only then calls alive. The agent feeds systemd's watchdog from
// alive (WATCHDOG=1), so a loop that is stuck — a Manager that cannot end
// faults, a revert that never returns — stops the pings, and systemd
// restarts the agent, whose ExecStopPost and next start take back what it
// held (invariant 3). There is deliberately no separate ticker feeding the
// watchdog: it would keep systemd content while enforcement is stuck.
//
// Enforce returns when ctx is done. l may be nil.
func Enforce(ctx context.Context, interval time.Duration, m Overdue, l *Lease, alive func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		now := time.Now()
		m.EndOverdue(now)
		if l != nil {
			l.expireIfOverdue(now)
		}
		if ctx.Err() != nil {
			return
		}
		alive()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
