// Package raftnode wires hashicorp/raft for one controller node: a
// raft-boltdb/v2 log and stable store (raft.db in the data directory)
// behind a 512-entry log cache, file snapshots keeping the last two, and a
// NetworkTransport over a mutual-TLS stream layer on the node's own raft
// address. Only peers whose certificate carries the controller role may
// speak raft to this node.
//
// A node bootstraps a single-node cluster when its data directory holds no
// raft state yet (raft.HasExistingState); a restarted node recovers its
// log and snapshots instead. Joining further nodes and forwarding writes
// from followers are later work; the seams for them are LeaderAddr and the
// ErrNotLeader error of Apply.
//
// Raft logs through hclog; a small adapter sends those records to the
// controller's slog logger so there is one log stream.
package raftnode
