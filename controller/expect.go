package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/turbulence-sre/turbulence/controller/raftnode"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Pauses of the bootstrap-expect discovery: peers start within seconds of
// each other, so ask often at first, then settle to a pace that costs
// nothing while an operator fixes a missing node.
const (
	expectRetryMin  = 100 * time.Millisecond
	expectRetryMax  = 2 * time.Second
	expectCallLimit = 2 * time.Second
)

// discovery is what one round of asking the Join addresses found.
type discovery struct {
	// peers are the distinct servers known, this node included, by ID.
	peers map[string]raftnode.Peer
	// answered is how many Join addresses answered.
	answered int
	// member is the gRPC address of a peer that is in a cluster already,
	// "" if none is.
	member string
	// problem, if set, forbids bootstrapping this round (an ID seen with
	// two addresses, more servers than expected).
	problem error
}

// expectLoop forms the cluster of a node started with BootstrapExpect and
// Join and no raft state. Each round it asks every Join address for its
// identity (ListServers' self), then:
//
//   - if this node got raft state meanwhile (a peer bootstrapped the same
//     set first and replicated to it), it is a member: done;
//   - if a peer is in a cluster already, this node joins it (joinLoop) —
//     a late or rebuilt node never bootstraps a second cluster;
//   - if every Join address answered and exactly BootstrapExpect distinct
//     servers are known, it bootstraps them. Every initial node computes
//     the same set from the same list, and raft accepts identical
//     bootstrap configurations on several servers, so the cluster is
//     bootstrapped once; raftnode refuses it on a node with state.
//
// Otherwise it waits and asks again until ctx is done.
func (c *Controller) expectLoop(ctx context.Context) {
	creds, err := c.joinCreds()
	if err != nil {
		c.logger.Error("cannot discover bootstrap-expect peers: TLS", "error", err)
		return
	}
	want := c.cfg.BootstrapExpect
	pause := expectRetryMin
	lastKnown, lastProblem := -1, ""
	for {
		if servers, err := c.node.Servers(); err == nil && len(servers) > 0 {
			c.logger.Info("raft state arrived from a peer; member of the cluster", "servers", len(servers))
			return
		}
		d := c.discover(ctx, creds)
		switch {
		case d.member != "":
			c.logger.Info("a bootstrap-expect peer is in a cluster already; joining it instead of bootstrapping", "via", d.member)
			c.joinLoop(ctx)
			return
		case d.problem != nil:
			// Once per distinct problem: it needs an operator, and
			// repeating it every round would bury everything else.
			if msg := d.problem.Error(); msg != lastProblem {
				lastProblem = msg
				c.logger.Error("not bootstrapping", "error", d.problem)
			}
		case d.answered == len(c.cfg.Join) && len(d.peers) == want:
			peers := make([]raftnode.Peer, 0, len(d.peers))
			for _, p := range d.peers {
				peers = append(peers, p)
			}
			err := c.node.BootstrapServers(peers)
			if err == nil || errors.Is(err, raftnode.ErrHasState) {
				return
			}
			c.logger.Error("bootstrap-expect: bootstrap failed; retrying", "error", err)
		case len(d.peers) != lastKnown:
			// Info only when the count changes: a node waiting for its
			// peers must not flood the log (docs/style.md, errors, logging and shutdown).
			lastKnown = len(d.peers)
			c.logger.Info("waiting for bootstrap-expect peers", "known", len(d.peers), "expect", want,
				"answered", d.answered, "asked", len(c.cfg.Join))
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		pause = min(2*pause, expectRetryMax)
	}
}

// discover asks every Join address once.
func (c *Controller) discover(ctx context.Context, creds credentials.TransportCredentials) discovery {
	self := c.node.Self()
	d := discovery{peers: map[string]raftnode.Peer{self.ID: self}}
	for _, addr := range c.cfg.Join {
		resp, err := listServers(ctx, addr, creds)
		if err != nil {
			c.logger.Debug("bootstrap-expect peer did not answer", "addr", addr, "error", err)
			continue
		}
		d.answered++
		if len(resp.GetServers()) > 0 {
			d.member = addr
			return d
		}
		s := resp.GetSelf()
		p := raftnode.Peer{ID: s.GetId(), Address: raftnode.Address{Raft: s.GetRaftAddress(), GRPC: s.GetGrpcAddress()}}
		if p.ID == "" || p.Address.Raft == "" {
			d.problem = fmt.Errorf("controller at %s did not say who it is (id %q, raft address %q): is it an older version?", addr, p.ID, p.Address.Raft)
			continue
		}
		if old, ok := d.peers[p.ID]; ok && old.Address != p.Address {
			d.problem = fmt.Errorf("node ID %q is used by two controllers (%s and %s): give every node its own --node-id", p.ID, old.Address, p.Address)
			continue
		}
		d.peers[p.ID] = p
	}
	if d.problem == nil && len(d.peers) > c.cfg.BootstrapExpect {
		d.problem = fmt.Errorf("found %d controllers through join, more than bootstrap-expect %d: give every initial node the same count and list", len(d.peers), c.cfg.BootstrapExpect)
	}
	return d
}

func listServers(ctx context.Context, addr string, creds credentials.TransportCredentials) (*turbulencev1.ListServersResponse, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithTimeout(ctx, expectCallLimit)
	defer cancel()
	return turbulencev1.NewClusterServiceClient(conn).ListServers(ctx, &turbulencev1.ListServersRequest{})
}
