package agentapi

import (
	"context"
	"time"
)

const (
	// DefaultElectionHold bounds how long a node that is not the leader
	// holds an agent's Hello while no leader is known, before it answers
	// Unavailable (Config.ElectionHold). It covers an election with
	// raft's default timings (1–3 s).
	DefaultElectionHold = 3 * time.Second
	// MaxElectionHold stays under the agent's Welcome timeout (10 s): a
	// Hello held longer would be given up by the agent first.
	MaxElectionHold = 9 * time.Second
	// electionPoll is how often a held Hello looks for a leader.
	electionPoll = 20 * time.Millisecond
)

// awaitLeader decides what to do with a Hello on this node: true when
// this node leads (it serves the session), false when another leader is
// known or none appeared within Config.ElectionHold (the caller
// redirects or refuses).
//
// Why hold at all: a Hello that reaches a follower during an election
// used to be refused at once, and the agent then waited its exponential
// backoff (up to seconds) before trying again — after the election had
// long ended. Held, it is redirected the moment the new leader is known,
// or served here if this node is the one elected (once past its barrier).
// Nothing is renewed while it waits (a Redirect renews no lease,
// invariant 2), so holding cannot keep a fault alive without a leader.
//
// "Known" means heard from recently (Config.LeaderGRPCAddr): after a
// leader dies, raft on a follower keeps naming it until the follower's
// heartbeat timer fires. A Redirect there would send the agent to a dead
// address and into its backoff; the Hello is held instead, like during
// the election that follows, and redirected once the new leader has
// been heard from.
func (h *Hub) awaitLeader(ctx context.Context) bool {
	if h.cfg.Raft.IsLeader() {
		return true
	}
	if h.cfg.LeaderGRPCAddr == nil {
		return false
	}
	hold := time.NewTimer(h.cfg.ElectionHold)
	defer hold.Stop()
	tick := time.NewTicker(electionPoll)
	defer tick.Stop()
	for {
		switch {
		case h.cfg.Raft.IsLeader():
			return true
		case h.cfg.LeaderGRPCAddr() != "", h.isClosed():
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-hold.C:
			return false
		case <-tick.C:
		}
	}
}

func (h *Hub) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}
