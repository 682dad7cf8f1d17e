package agentapi

import (
	"context"
	"time"

	"github.com/turbulence-sre/turbulence/controller/state"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

const (
	// leaderTick is how often the leader loop looks for expired faults.
	leaderTick = time.Second
	// leaseGrace is added to the lease TTL before the controller records
	// an unreachable agent's faults as reverted, so the agent (whose
	// clock started at its last message) has certainly reverted them.
	leaseGrace = 2 * time.Second
	// deadlineGrace is how long after a fault's deadline the controller
	// records it as reverted when the agent cannot tell it so itself.
	deadlineGrace = 5 * time.Second
)

// RunLeaderLoop records the faults that must have ended on agents that
// cannot report it, until ctx is done. Run it only while this node is the
// leader, and restart it on every new leadership.
func (h *Hub) RunLeaderLoop(ctx context.Context) error {
	// Invariant 2: an agent with no session to this node counts as
	// disconnected since this leadership started, not since some older
	// leader lost it. A leader change shorter than the lease TTL thus
	// reverts nothing: the agent reconnects in time.
	leaderSince := time.Now()
	t := time.NewTicker(leaderTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			for _, d := range h.expired(leaderSince, now) {
				h.logger.Info("recording fault as reverted", "fault_id", d.faultID, "reason", d.reason)
				h.update(ctx, "controller", d.faultID, stReverted, d.reason, nil)
			}
		}
	}
}

// expiry is one fault the leader loop records as REVERTED.
type expiry struct {
	faultID string
	reason  string
}

// expired collects the decisions for now.
func (h *Hub) expired(leaderSince, now time.Time) []expiry {
	faults := h.cfg.State.Faults(state.FaultFilter{ActiveOnly: true})
	away := make(map[string]time.Time) // agent ID -> disconnected since
	h.mu.Lock()
	for _, f := range faults {
		id := f.GetAgentId()
		if _, done := away[id]; done {
			continue
		}
		if _, connected := h.sessions[id]; connected {
			continue
		}
		since := leaderSince
		if a, ok := h.agents[id]; ok && a.disconnectedAt.After(since) {
			since = a.disconnectedAt
		}
		away[id] = since
	}
	h.mu.Unlock()
	return decideExpiry(faults, away, now, h.cfg.LeaseTTL)
}

// decideExpiry is the pure decision of the leader loop. away maps each
// disconnected agent to the time since when it is known to be away.
// Faults of connected agents are left alone: their agent reports on them.
func decideExpiry(faults []*turbulencev1.Fault, away map[string]time.Time, now time.Time, leaseTTL time.Duration) []expiry {
	var out []expiry
	for _, f := range faults {
		since, isAway := away[f.GetAgentId()]
		if !isAway || state.Ended(f.GetState()) {
			continue
		}
		switch {
		case now.Sub(since) > leaseTTL+leaseGrace:
			out = append(out, expiry{f.GetId(), ReasonLeaseExpired})
		case f.GetState() != stReverting && now.Sub(f.GetDeadline().AsTime()) > deadlineGrace:
			out = append(out, expiry{f.GetId(), ReasonDeadline})
		}
	}
	return out
}
