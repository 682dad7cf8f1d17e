// Package agentapi serves AgentService, the agents' side of the
// controller, as written in docs/protocol.md: one long-lived stream per
// agent, opened by the agent, kept by the raft leader.
//
// The Hub owns every open session and the soft state that is deliberately
// not replicated (docs/design.md, controller state): whether an agent is
// connected, when it was last heard, whether it is halted locally, and the
// latest status of each fault it holds. Everything an agent reports that
// changes a fault's recorded state goes through raft (UpdateFault); the
// soft state is lost on a leader change and rebuilt from the next
// heartbeats.
//
// Concurrency: each session has at most one goroutine calling Send (a
// gRPC stream is not safe for concurrent Send), which drains a bounded
// queue and runs only while there is something to send (outbox.go), one
// goroutine calling Recv, and the handler goroutine that processes what
// was received in order. Commands from the ControlService (Dispatch*,
// Broadcast*) only enqueue. An agent that stops reading and lets its
// queue fill is disconnected rather than allowed to block the controller;
// when it reconnects, the Hello reconciliation (and Welcome.halted) bring
// it back in line, so no command is lost for good.
//
// A Hello that reaches a node which is not the leader is answered with a
// Redirect to the leader, provided this node heard from that leader
// within raft's leader lease (a follower keeps naming a dead leader for a
// heartbeat timeout or two). While no live leader is known — during an
// election, or while the named leader is silent — the Hello is held for
// up to two election timeouts (at least 3 s, at most 9 s) and answered
// as soon as one is (await.go), so the
// fleet re-attaches when the election ends rather than when each agent's
// backoff next fires; a Redirect renews no lease, so holding never keeps
// a fault alive without a leader (invariant 2).
//
// Liveness is judged on the stream, not by the handler's progress: the
// receiving goroutine stamps when the agent was last heard, and while it
// waits for a handler busy with raft writes it renews the lease every
// heartbeat interval (handOver). Renewals go out ahead of queued commands
// (outbox.go). Overload thus slows reports and commands down and never
// lets a live agent's lease run out (docs/design.md).
//
// Sessions and lease renewals are leader-only work: a node that stops
// leading ends every session, refuses a registration still in flight,
// and answers a heartbeat that slips in before that by ending the
// session instead of renewing the lease.
//
// The leader loop (RunLeaderLoop) is the controller's half of invariants 1
// and 2, held back by invariant 8 (the controller never claims more than
// it knows): the faults of agents unreachable for longer than their lease,
// and the faults whose deadline passed while their agent was away, have
// been taken back by the agent's own timers — but only the agent can say
// so, and when. They are recorded UNCONFIRMED, with the time the lease ran
// out, until the agent reports how they ended (reconcile.go). An agent
// whose session is open but silent for two heartbeat intervals counts as
// away (hub.go, silent).
package agentapi
