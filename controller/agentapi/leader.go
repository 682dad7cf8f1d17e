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
	// an unreachable agent's faults as UNCONFIRMED, so the agent (whose
	// clock started at its last message) has had its lease run out.
	leaseGrace = 2 * time.Second
	// deadlineGrace is how long after a fault's deadline the controller
	// records it as UNCONFIRMED when the agent cannot tell it what became
	// of it.
	deadlineGrace = 5 * time.Second
)

// RunLeaderLoop records as UNCONFIRMED the faults whose agent cannot say
// what became of them, until ctx is done. Invariants 2 and 1 say the
// agent has taken them back by itself; invariant 8 says the controller
// does not claim so until the agent reports it (reconcile.go). Run it
// only while this node is the leader, and restart it on every new
// leadership.
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
			lapsed := map[string]bool{} // agents whose lease ran out, counted once
			for _, d := range h.expired(leaderSince, now) {
				h.logger.Info("recording fault as unconfirmed", "fault_id", d.faultID, "reason", d.reason, "since", d.since)
				h.updateUnconfirmed(ctx, "controller", d.faultID, d.reason, d.last, d.since)
				if d.reason == ReasonLeaseExpired && !lapsed[d.agentID] {
					lapsed[d.agentID] = true
					h.metrics.leaseExpiries.Inc()
				}
			}
		}
	}
}

// expiry is one fault the leader loop records as UNCONFIRMED.
type expiry struct {
	faultID string
	agentID string
	reason  string
	// since is when the outcome became unknown: the moment the agent's
	// lease ran out, or the fault's deadline.
	since time.Time
	// last is the agent's last status of the fault, if this node has one
	// (its measured effect is kept).
	last *turbulencev1.FaultStatus
}

// absence is what the leader knows of an agent that is away: no session,
// or a silent one.
type absence struct {
	// since is when it is known to be away: its session's end, the last
	// time a silent session was heard, or this leadership's start.
	since time.Time
	// lastContact is the last time it was heard from (the last lease
	// renewal it was sent), or since when this node never heard it.
	lastContact time.Time
}

// expired collects the decisions for now.
func (h *Hub) expired(leaderSince, now time.Time) []expiry {
	faults := h.cfg.State.Faults(state.FaultFilter{ActiveOnly: true})
	away := make(map[string]absence) // by agent ID
	last := make(map[string]*turbulencev1.FaultStatus)
	h.mu.Lock()
	for _, f := range faults {
		id := f.GetAgentId()
		if _, done := away[id]; done {
			continue
		}
		a, known := h.agents[id]
		s, open := h.sessions[id]
		if open && known && !h.silent(a, s, now) {
			continue
		}
		ab := absence{since: leaderSince, lastContact: leaderSince}
		if known {
			// A closed session is away since it ended; a silent one
			// (half-open) since it was last heard.
			seen := a.LastSeen
			if open {
				seen = h.lastSeen(a, s, now)
			}
			end := a.disconnectedAt
			if open {
				end = seen
			}
			if end.After(ab.since) {
				ab.since = end
			}
			if seen.After(ab.lastContact) {
				ab.lastContact = seen
			}
		}
		away[id] = ab
	}
	for _, f := range faults {
		if a, ok := h.agents[f.GetAgentId()]; ok {
			if st, ok := a.last[f.GetId()]; ok {
				last[f.GetId()] = clone(st)
			}
		}
	}
	h.mu.Unlock()
	out := decideExpiry(faults, away, now, h.cfg.LeaseTTL)
	for i := range out {
		out[i].last = last[out[i].faultID]
	}
	return out
}

// decideExpiry is the pure decision of the leader loop. away maps each
// disconnected agent to what is known of its absence. Faults of
// connected agents are left alone: their agent reports on them. Faults
// already UNCONFIRMED stay as they are until their agent reports.
func decideExpiry(faults []*turbulencev1.Fault, away map[string]absence, now time.Time, leaseTTL time.Duration) []expiry {
	var out []expiry
	for _, f := range faults {
		ab, isAway := away[f.GetAgentId()]
		if !isAway || state.Ended(f.GetState()) || f.GetState() == stUnconfirmed {
			continue
		}
		deadline := f.GetDeadline().AsTime()
		switch {
		case now.Sub(ab.since) > leaseTTL+leaseGrace:
			// The agent's lease ran out leaseTTL after it last heard
			// from the controller.
			out = append(out, expiry{faultID: f.GetId(), agentID: f.GetAgentId(), reason: ReasonLeaseExpired, since: ab.lastContact.Add(leaseTTL)})
		case f.GetState() != stReverting && now.Sub(deadline) > deadlineGrace:
			out = append(out, expiry{faultID: f.GetId(), reason: ReasonDeadlineUnreachable, since: deadline})
		}
	}
	return out
}
