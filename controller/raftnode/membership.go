package raftnode

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"

	"github.com/turbulence-sre/turbulence/internal/tlsutil"
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

// AddNonvoter adds a server as a non-voter, on the leader only: it gets
// the log but counts for no quorum, so a server that never answers (a
// made-up one at an unreachable address) cannot stop the cluster from
// electing a leader or committing. Adding a server that is already a
// member (non-voter or voter) with the same address is a no-op, so a
// joining node may retry. A stale server with the same ID (a node that
// came back on a new address) or the same address (a node rebuilt under
// a new ID) is removed first, as hraftd does, so the configuration never
// holds two entries for one machine.
func (n *Node) AddNonvoter(ctx context.Context, id string, addr Address) error {
	if err := n.removeStale(ctx, id, addr); err != nil {
		if errors.Is(err, errAlreadyMember) {
			return nil
		}
		return err
	}
	if err := n.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr.String()), 0, membershipTimeout(ctx)).Error(); err != nil {
		return fmt.Errorf("add non-voter %q: %w", id, classify(err))
	}
	n.logger.Info("raft server added as a non-voter", "id", id, "addr", addr.String())
	return nil
}

// Promote makes a non-voter a voter, on the leader only; a voter stays
// one. The caller has checked that the server answers and has caught up
// (controller/clusterapi), so that the new quorum can commit.
func (n *Node) Promote(ctx context.Context, id string) error {
	servers, err := n.Servers()
	if err != nil {
		return err
	}
	for _, s := range servers {
		if s.ID != id {
			continue
		}
		if s.Suffrage == "voter" {
			return nil
		}
		if err := n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(s.Address.String()), 0, membershipTimeout(ctx)).Error(); err != nil {
			return fmt.Errorf("promote %q to voter: %w", id, classify(err))
		}
		n.logger.Info("raft server promoted to voter", "id", id)
		return nil
	}
	return fmt.Errorf("promote %q: %w", id, ErrUnknownServer)
}

// errAlreadyMember: removeStale found the server in place already.
var errAlreadyMember = errors.New("already a member")

// removeStale removes a server with the same ID or raft address but not
// both, before id is added at addr. It returns errAlreadyMember when id
// is a member at addr already, voter or not.
func (n *Node) removeStale(ctx context.Context, id string, addr Address) error {
	if id == "" || addr.Raft == "" {
		return fmt.Errorf("add server: id and raft address are required (got id %q, raft address %q)", id, addr.Raft)
	}
	servers, err := n.Servers()
	if err != nil {
		return err
	}
	timeout := membershipTimeout(ctx)
	for _, s := range servers {
		sameID, sameAddr := s.ID == id, s.Address.Raft == addr.Raft
		if sameID && s.Address == addr {
			return errAlreadyMember
		}
		if sameID || sameAddr {
			n.logger.Info("removing stale raft server before join", "stale_id", s.ID, "stale_addr", s.Address.String(), "id", id)
			if err := n.raft.RemoveServer(raft.ServerID(s.ID), 0, timeout).Error(); err != nil {
				return fmt.Errorf("remove stale server %q: %w", s.ID, classify(err))
			}
		}
	}
	return nil
}

// VerifyPeer dials addr's raft port over mutual TLS and succeeds only if
// the server there holds the controller certificate of id: the check a
// join makes before the leader replicates anything to a new node.
func (n *Node) VerifyPeer(ctx context.Context, id string, addr Address) error {
	cfg := n.stream.dialer.Config.Clone()
	cfg.VerifyConnection = tlsutil.RequirePeer(tlsutil.Identity{Role: tlsutil.RoleController, Name: id})
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: verifyPeerTimeout}, Config: cfg}
	ctx, cancel := context.WithTimeout(ctx, verifyPeerTimeout)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", addr.Raft)
	if err != nil {
		return fmt.Errorf("%w: %s at raft address %s: %w", ErrPeerUnverified, id, addr.Raft, err)
	}
	return conn.Close()
}

// verifyPeerTimeout bounds VerifyPeer's dial and handshake.
const verifyPeerTimeout = 5 * time.Second

// ErrPeerUnverified: a server to be added did not answer over mutual TLS
// with the controller certificate of the ID it is to be added under.
var ErrPeerUnverified = errors.New("server did not answer as that controller")

// RemoveServer removes a server from the configuration, on the leader
// only. A removal that would leave the voters without a quorum (the last
// voter, or too few voters left that answer heartbeats) is refused with
// ErrWouldLoseQuorum: raft would accept it, and the cluster could then
// never elect a leader again without the offline recovery. It is not retried: a removal is an operator's decision, and a
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
	if err := n.checkRemoval(servers, id); err != nil {
		return err
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
