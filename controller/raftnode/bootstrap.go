package raftnode

import (
	"cmp"
	"errors"
	"fmt"
	"slices"

	"github.com/hashicorp/raft"
)

// ErrHasState is returned by BootstrapServers when the node already holds
// raft state: it is a member of a cluster (perhaps of the very one it was
// about to bootstrap, if a peer bootstrapped first and replicated to it),
// and bootstrapping again would fork it from that cluster.
var ErrHasState = errors.New("raft state exists; not bootstrapping again")

// Self is this node as it would appear in a raft configuration: its ID
// and the composite address its transport advertises. Nodes that form a
// cluster by --bootstrap-expect exchange it to build one identical
// configuration.
func (n *Node) Self() Peer {
	return Peer{ID: n.id, Address: addressOf(n.trans.LocalAddr())}
}

// BootstrapServers bootstraps a brand-new node with the given servers,
// which must include this node. Every node of a new cluster may call it
// with the same list: raft accepts identical bootstrap configurations on
// several servers, and the list is sorted here so that the order in which
// a node discovered its peers does not matter. A node with raft state
// gets ErrHasState and changes nothing (bootstrap once, never twice).
func (n *Node) BootstrapServers(peers []Peer) error {
	self := n.Self()
	var boot raft.Configuration
	found := false
	for _, p := range peers {
		addr := p.Address
		if p.ID == self.ID {
			found = true
			// Our own entry is what our transport advertises, or the
			// others would dial an address nobody listens on.
			addr = self.Address
		}
		boot.Servers = append(boot.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(addr.String())})
	}
	if !found {
		return fmt.Errorf("bootstrap servers: this node's ID %q is not among the %d servers", self.ID, len(peers))
	}
	slices.SortFunc(boot.Servers, func(a, b raft.Server) int { return cmp.Compare(a.ID, b.ID) })
	if err := n.raft.BootstrapCluster(boot).Error(); err != nil {
		if errors.Is(err, raft.ErrCantBootstrap) {
			return fmt.Errorf("%w: %w", ErrHasState, err)
		}
		return fmt.Errorf("bootstrap raft cluster of %d servers: %w", len(boot.Servers), err)
	}
	n.logger.Info("bootstrapped raft cluster", "servers", len(boot.Servers), "raft_addr", self.Address.Raft)
	return nil
}
