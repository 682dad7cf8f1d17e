package raftnode

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// ErrUnknownServer is returned by RemoveServer for an ID that is not in
// the configuration.
var ErrUnknownServer = errors.New("no such server in the raft configuration")

// defaultMembershipTimeout bounds a configuration change when the context
// has no deadline.
const defaultMembershipTimeout = 10 * time.Second

// Server is one member of the raft configuration.
type Server struct {
	ID       string
	Address  Address
	Suffrage string
	Leader   bool
}

// Servers returns the latest raft configuration known to this node, with
// the leader it knows of marked. On a follower it may lag the leader's by
// a round trip; it never blocks on the network.
func (n *Node) Servers() ([]Server, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, classify(err)
	}
	_, leaderID := n.raft.LeaderWithID()
	var out []Server
	for _, s := range f.Configuration().Servers {
		out = append(out, Server{
			ID:       string(s.ID),
			Address:  addressOf(s.Address),
			Suffrage: suffrage(s.Suffrage),
			Leader:   s.ID == leaderID,
		})
	}
	return out, nil
}

func suffrage(s raft.ServerSuffrage) string {
	switch s {
	case raft.Voter:
		return "voter"
	case raft.Nonvoter:
		return "nonvoter"
	case raft.Staging:
		return "staging"
	}
	return "unknown"
}

// AddVoter adds a server as a voter, on the leader only. Adding a server
// that is already a member with the same address is a no-op, so a node
// that retries its join is harmless. A stale server with the same ID (a
// node that came back on a new address) or the same address (a node that
// was rebuilt under a new ID) is removed first, as hraftd does, so the
// configuration never holds two entries for one machine.
func (n *Node) AddVoter(ctx context.Context, id string, addr Address) error {
	if id == "" || addr.Raft == "" {
		return fmt.Errorf("add voter: id and raft address are required (got id %q, raft address %q)", id, addr.Raft)
	}
	servers, err := n.Servers()
	if err != nil {
		return err
	}
	timeout := membershipTimeout(ctx)
	for _, s := range servers {
		sameID, sameAddr := s.ID == id, s.Address.Raft == addr.Raft
		if sameID && s.Address == addr && s.Suffrage == "voter" {
			return nil
		}
		if sameID || sameAddr {
			n.logger.Info("removing stale raft server before join", "stale_id", s.ID, "stale_addr", s.Address.String(), "id", id)
			if err := n.raft.RemoveServer(raft.ServerID(s.ID), 0, timeout).Error(); err != nil {
				return fmt.Errorf("remove stale server %q: %w", s.ID, classify(err))
			}
		}
	}
	if err := n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr.String()), 0, timeout).Error(); err != nil {
		return fmt.Errorf("add voter %q: %w", id, classify(err))
	}
	n.logger.Info("raft server added", "id", id, "addr", addr.String())
	return nil
}

// RemoveServer removes a server from the configuration, on the leader
// only. It is not retried: a removal is an operator's decision, and a
// failed one is reported for the operator to repeat.
func (n *Node) RemoveServer(ctx context.Context, id string) error {
	servers, err := n.Servers()
	if err != nil {
		return err
	}
	found := false
	for _, s := range servers {
		found = found || s.ID == id
	}
	if !found {
		return fmt.Errorf("remove server %q: %w", id, ErrUnknownServer)
	}
	if err := n.raft.RemoveServer(raft.ServerID(id), 0, membershipTimeout(ctx)).Error(); err != nil {
		return fmt.Errorf("remove server %q: %w", id, classify(err))
	}
	n.logger.Info("raft server removed", "id", id)
	return nil
}

func membershipTimeout(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return time.Until(dl)
	}
	return defaultMembershipTimeout
}
