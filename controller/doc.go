// Package controller is the composition root of turbulence-controller: it
// builds the replicated state, the raft node, the agent hub and the
// control API from a Config, serves them on one mutual-TLS gRPC listener,
// and shuts them down in order.
//
// Shutdown order (Run, after its context is done):
//
//  0. a leader hands leadership to another voter (raft's
//     LeadershipTransfer, bounded by a few seconds) and waits to hear
//     from the new leader, so the cluster never waits out an election
//     timeout for a node that stops on purpose; errors (a one-node
//     cluster has no one to hand over to) are logged, and the stop goes
//     on;
//  1. stop accepting API calls: health NOT_SERVING, end the long-lived
//     streams (agent sessions, WatchEvents), gRPC GracefulStop bounded by
//     a timeout, then a hard Stop;
//  2. stop the leader-only loops;
//  3. shut raft down (which closes its transport and listener);
//  4. close the stores.
//
// Agents are not told to revert anything when a controller stops: their
// faults live on under their lease (invariant 2), so a restart or a
// leader change shorter than the lease TTL reverts nothing, and a longer
// outage reverts everything on the agents by themselves.
package controller
