package controller

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/turbulence-sre/turbulence/controller/raftnode"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Pauses of the join loop: it keeps asking, because the cluster may be in
// an election or the addresses not up yet, but not so fast that it floods.
const (
	joinRetryMin  = 100 * time.Millisecond
	joinRetryMax  = 5 * time.Second
	joinCallLimit = 15 * time.Second
)

// joinLoop asks the controllers in cfg.Join, in turn, to add this node,
// until one says yes or ctx is done. Any node may be asked: a follower
// forwards the Join to the leader (controller/forward). The node presents
// its own controller certificate, which ClusterService accepts for Join.
func (c *Controller) joinLoop(ctx context.Context) {
	creds, err := c.joinCreds()
	if err != nil {
		c.logger.Error("cannot join: TLS", "error", err)
		return
	}
	req := &turbulencev1.JoinRequest{Id: c.cfg.NodeID, RaftAddress: c.RaftAddr(), GrpcAddress: c.advertisedGRPCAddr()}
	pause := joinRetryMin
	for i := 0; ; i++ {
		addr := c.cfg.Join[i%len(c.cfg.Join)]
		err := joinOnce(ctx, addr, creds, req)
		if err == nil {
			c.logger.Info("joined the controller cluster", "via", addr)
			return
		}
		c.logger.Warn("join attempt failed; retrying", "via", addr, "error", err, "retry_in", pause)
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		pause = min(2*pause, joinRetryMax)
	}
}

func joinOnce(ctx context.Context, addr string, creds credentials.TransportCredentials, req *turbulencev1.JoinRequest) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return fmt.Errorf("dial %s: %w", addr, err)
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithTimeout(ctx, joinCallLimit)
	defer cancel()
	_, err = turbulencev1.NewClusterServiceClient(conn).Join(ctx, req)
	return err
}

func (c *Controller) joinCreds() (credentials.TransportCredentials, error) {
	tc, err := tlsutil.ClientConfig(c.cfg.TLS, "")
	if err != nil {
		return nil, err
	}
	tc.VerifyConnection = tlsutil.RequirePeerRole(tlsutil.RoleController)
	return credentials.NewTLS(tc), nil
}

func (c *Controller) advertisedGRPCAddr() string {
	if c.cfg.AdvertiseGRPCAddr != "" {
		return c.cfg.AdvertiseGRPCAddr
	}
	return c.GRPCAddr()
}

// probeController is clusterapi's Prober: it asks the controller id at
// grpcAddr for the raft configuration it knows, accepting only id's own
// controller certificate, so that a join is promoted only when the node
// that caught up is the one that was verified.
func (c *Controller) probeController(ctx context.Context, id, grpcAddr string) ([]raftnode.Server, error) {
	tc := c.probeTLS.Clone()
	tc.VerifyConnection = tlsutil.RequirePeer(tlsutil.Identity{Role: tlsutil.RoleController, Name: id})
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", grpcAddr, err)
	}
	defer func() { _ = conn.Close() }()
	resp, err := turbulencev1.NewClusterServiceClient(conn).ListServers(ctx, &turbulencev1.ListServersRequest{})
	if err != nil {
		return nil, err
	}
	out := make([]raftnode.Server, 0, len(resp.GetServers()))
	for _, s := range resp.GetServers() {
		out = append(out, raftnode.Server{ID: s.GetId(), Suffrage: s.GetSuffrage(),
			Address: raftnode.Address{Raft: s.GetRaftAddress(), GRPC: s.GetGrpcAddress()}})
	}
	return out, nil
}
