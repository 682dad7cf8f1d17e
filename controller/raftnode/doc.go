// Package raftnode wires hashicorp/raft for one controller node: a
// raft-boltdb/v2 log and stable store (raft.db in the data directory)
// behind a 512-entry log cache, file snapshots keeping the last two, and a
// NetworkTransport over a mutual-TLS stream layer on the node's own raft
// address. Only peers whose certificate carries the controller role may
// speak raft to this node.
//
// Bootstrap happens only when the data directory holds no raft state yet
// (raft.HasExistingState): with an explicit peer list (every initial node
// may be given the same one; raft accepts identical bootstraps), as a
// single-node cluster when no cluster flags are given, or not at all for
// a node that will be added with AddNonvoter and Promote (--join) or
// bootstrapped later
// with BootstrapServers once its controller has found the other initial
// nodes (--bootstrap-expect; see docs/design.md). A restarted node
// recovers its log and snapshots and rejoins by itself; it never
// bootstraps twice.
//
// A server's raft address is the composite "raft-addr/grpc-addr"
// (Address): raft treats it as opaque, the stream layer dials the raft
// part, and every node learns the leader's gRPC address from raft itself,
// for write forwarding (controller/forward) and agent redirects.
//
// The raft port is guarded (stream.go): connection caps, a handshake
// deadline before raft sees a connection, and a deadline for its first
// RPC. Membership changes cannot lose the quorum (membership.go,
// health.go), and Recover rewrites a stopped node's configuration when
// the quorum is lost all the same (recover.go).
//
// Raft logs through hclog; a small adapter sends those records to the
// controller's slog logger so there is one log stream.
package raftnode
