// Package forward makes every controller node accept writes: a mutating
// call that reaches a follower is forwarded, whole, to the leader over
// gRPC, and answered with the leader's answer (docs/design.md: "Any node
// answers reads and forwards writes to the leader").
//
// It is one gRPC unary server interceptor (Forwarder.Unary) in front of
// the ControlService and the ClusterService:
//
//   - Reads (methods named Get… or List…) are served locally, from this
//     node's replicated state, and never forwarded — unless the caller
//     asks for a consistent read with the metadata MDConsistent: then the
//     read is routed like a write, and the leader passes a raft barrier
//     before it answers. Local reads may be stale (a follower lags, and a
//     new leader's state lags its log until its barrier); consistent
//     reads are linearizable (controller/linearizability_test.go).
//   - Every other unary method of those services is a write. On the
//     leader it runs here; on a follower it is sent to the leader's gRPC
//     address, which raft itself tells us (raftnode.Address). The whole
//     call is forwarded, not a raft entry, because the leader must also do
//     what follows the commit: dispatch the fault to the agent's session,
//     broadcast a halt (invariant 5), all of which live on the leader.
//   - While there is no leader (an election) or the leader cannot be
//     reached, the call is held and retried with jitter for at most
//     Config.HoldTimeout (5 s by default, Consul's RPCHoldTimeout idea),
//     then refused with Unavailable.
//   - Hop limit 1: a forwarded call that reaches a node which is not the
//     leader (any more) is refused with Unavailable rather than forwarded
//     again, and the first node retries within its hold time. There are
//     no forwarding loops (docs/style.md, loops and retries: tailscale's loop has none).
//   - Retries are safe because a write carries a request ID: when the
//     caller gave none, the first node fills one in before the first
//     attempt, so a retry after "leadership lost" finds the first attempt's
//     result in the state instead of making a second fault.
//
// Identity: the forwarder dials the leader with this controller's own
// certificate and carries the original caller's identity in metadata.
// The leader trusts that metadata only when the peer's verified
// certificate has the controller role; anyone else sending it is refused.
// Handlers read the caller through CallerIdentity, never from the peer
// alone, so the leader authorises the human who typed the command, not
// the follower that passed it on.
package forward
