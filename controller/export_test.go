package controller

import "time"

// Test hooks for package controller_test: they reach the raft node,
// which the Controller does not expose.

// TransferLeadership hands raft leadership to another voter while this
// node keeps running, as a graceful stop does first, so that tests can
// watch a leader step down.
func (c *Controller) TransferLeadership(timeout time.Duration) (string, error) {
	return c.node.TransferLeadership(timeout)
}

// SetRaftTimeouts changes this node's raft heartbeat and election
// timeouts at run time. A follower given long ones keeps naming a dead
// leader (and never starts an election) for that long.
func (c *Controller) SetRaftTimeouts(heartbeat, election time.Duration) error {
	return c.node.ReloadTimeouts(heartbeat, election)
}

// LiveLeaderGRPCAddr is the leader address this node would redirect an
// agent to: "" unless it heard from that leader recently.
func (c *Controller) LiveLeaderGRPCAddr() string { return c.node.LiveLeaderGRPCAddr() }

// FailingPeers lists the servers whose heartbeats fail from this leader,
// as the removal check sees them.
func (c *Controller) FailingPeers() []string { return c.node.FailingPeers() }
