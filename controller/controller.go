package controller

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/turbulence-sre/turbulence/controller/agentapi"
	"github.com/turbulence-sre/turbulence/controller/clusterapi"
	"github.com/turbulence-sre/turbulence/controller/controlapi"
	"github.com/turbulence-sre/turbulence/controller/experiment/runner"
	"github.com/turbulence-sre/turbulence/controller/forward"
	"github.com/turbulence-sre/turbulence/controller/fsm"
	"github.com/turbulence-sre/turbulence/controller/hostseries"
	"github.com/turbulence-sre/turbulence/controller/raftnode"
	"github.com/turbulence-sre/turbulence/controller/state"
	"github.com/turbulence-sre/turbulence/internal/connlimit"
	"github.com/turbulence-sre/turbulence/internal/refusal"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	raftv1 "github.com/turbulence-sre/turbulence/proto/turbulence/raft/v1"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

const (
	// gracefulStopTimeout bounds how long Run waits for calls in flight
	// before it cuts them.
	gracefulStopTimeout = 5 * time.Second
	// barrierTimeout bounds how long a new leader waits for its FSM to
	// catch up before it acts on the state.
	barrierTimeout = 30 * time.Second
	// leadershipTransferTimeout bounds the hand-over of a leader that
	// stops gracefully. Raft bounds its own part by one or two
	// ElectionTimeouts (1 s at ours); the rest is the new
	// leader's first heartbeat. A stop never waits longer than this for
	// the cluster's sake: past it the others elect by timeout.
	leadershipTransferTimeout = 3 * time.Second
)

// Controller is one controller node.
type Controller struct {
	cfg    Config
	logger *slog.Logger

	state *state.State
	node  *raftnode.Node
	hub   *agentapi.Hub
	api   *controlapi.Server
	// runner runs experiments while this node leads.
	runner  *runner.Runner
	fwd     *forward.Forwarder
	server  *grpc.Server
	health  *health.Server
	grpcLis *connlimit.Listener
	// refusals counts and logs refused calls, handshakes and connections.
	refusals *refusal.Recorder
	// raftMetrics is the process's bridge of raft's own metrics
	// (raftmetrics.go); nil if it could not be set up.
	raftMetrics prometheus.Collector
	// probeTLS is the client TLS configuration for asking a joining node
	// whether it has caught up (probeController).
	probeTLS *tls.Config

	// leading is true while this node is leader and has caught up.
	leading atomic.Bool
	// readyLogged makes "controller ready" appear once.
	readyLogged bool
	runOnce     sync.Once
	// skipTransfer, set by SkipLeadershipTransfer, makes the stop of a
	// leader skip the leadership hand-over.
	skipTransfer atomic.Bool
}

// New opens the raft stores, binds the gRPC and raft listeners (so ":0"
// works and GRPCAddr is known before Run) and starts raft. Call Run to
// serve and, eventually, to release everything.
func New(cfg Config) (*Controller, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("controller config: %w", err)
	}
	logger := cfg.Logger.With("node_id", cfg.NodeID)
	c := &Controller{cfg: cfg, logger: logger, state: state.New()}
	// Before raft starts, so that its first election is counted too.
	if rm, err := raftMetrics(); err != nil {
		logger.Warn("raft metrics are not exported", "error", err)
	} else {
		c.raftMetrics = rm
	}

	raftGuard, grpcGuard, err := budgetGuards(cfg, connlimit.NoFile(), logger)
	if err != nil {
		return nil, err
	}
	// Visible refusals (internal/refusal): both ports' connection caps
	// and handshakes, and every refused call, are counted and logged.
	c.refusals = refusal.New(logger.With("component", "refusal"))
	grpcGuard.Limits.OnRefuse = c.refusedConn(refusal.ListenerGRPC)
	raftGuard.Limits.OnRefuse = c.refusedConn(refusal.ListenerRaft)
	raftGuard.OnHandshakeFailure = func(remote net.Addr, err error) {
		c.refusals.Record(refusal.ListenerRaft, refusal.ReasonTLSHandshake, "peer at "+remote.String(), "TLS handshake", refusal.HandshakeCause(err))
	}
	rawGRPCLis, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on gRPC address %s: %w", cfg.GRPCAddr, err)
	}
	grpcLis := connlimit.Wrap(rawGRPCLis, grpcGuard.Limits)
	raftLis, err := net.Listen("tcp", cfg.RaftAddr)
	if err != nil {
		_ = grpcLis.Close()
		return nil, fmt.Errorf("listen on raft address %s: %w", cfg.RaftAddr, err)
	}
	advertise := cfg.AdvertiseGRPCAddr
	if advertise == "" {
		advertise = grpcLis.Addr().String()
	}
	// Peers are bootstrapped at once by raftnode. With bootstrap-expect
	// and Join the node waits (as a joining node does) until
	// expectLoop has found every peer.
	var peers []raftnode.Peer
	if cfg.Bootstrap || cfg.BootstrapExpect > 0 {
		peers = cfg.Peers
	}
	// raftnode owns raftLis from here, on failure too.
	node, err := raftnode.New(raftnode.Config{
		NodeID:   cfg.NodeID,
		DataDir:  cfg.DataDir,
		Listener: raftLis,
		TLS:      cfg.TLS,
		FSM:      fsm.New(c.state, logger.With("component", "fsm")),
		Logger:   logger,
		GRPCAddr: advertise,
		Peers:    peers,
		Join:     len(cfg.Join) > 0,

		ElectionTimeout: cfg.RaftElectionTimeout,
		Tune:            cfg.RaftTune,
		Guard:           raftGuard,
	})
	if err != nil {
		_ = grpcLis.Close()
		return nil, err
	}
	fwd, err := forward.New(forward.Config{
		// Writes run here only once this node leads and has passed its
		// barrier: their checks before proposing (request ID seen, halt
		// flag, agent registered) read the local state, which on a new
		// leader lags its log until then.
		Handle: forwardGate{node: node, leading: &c.leading, self: advertise},
		TLS:    cfg.TLS,
		Services: []string{
			turbulencev1.ControlService_ServiceDesc.ServiceName,
			turbulencev1.ClusterService_ServiceDesc.ServiceName,
		},
		// Host metrics are the leader's soft state (controller/hostseries):
		// a follower has none to answer from.
		LeaderReads: []string{turbulencev1.ControlService_GetAgentMetrics_FullMethodName},
		HoldTimeout: cfg.HoldTimeout,
		Logger:      logger,
	})
	if err != nil {
		_ = grpcLis.Close()
		_ = node.Shutdown()
		return nil, err
	}
	server, err := newGRPCServer(cfg.TLS, logger, grpcGuard, c.refusals,
		// Field bounds first: a request over them is refused where it
		// arrived, before it is counted, forwarded or proposed
		// (docs/limits.md).
		controlapi.BoundsUnary(),
		// Rate limits before forwarding: the node the caller reached
		// counts its writes (controlapi/ratelimit.go; halt exempt).
		controlapi.NewRateLimiter(0, 0).Unary(), fwd.Unary())
	if err != nil {
		_ = grpcLis.Close()
		_ = node.Shutdown()
		fwd.Close()
		return nil, fmt.Errorf("gRPC TLS: %w", err)
	}
	c.node, c.grpcLis, c.server, c.fwd = node, grpcLis, server, fwd
	c.hub = agentapi.New(agentapi.Config{
		// Agent sessions are leader-only work: accepted once this node
		// leads and has passed its barrier (c.leading), not merely when
		// raft calls it leader.
		Raft:              leaderGate{node: node, leading: &c.leading},
		State:             c.state,
		LeaseTTL:          cfg.LeaseTTL,
		HeartbeatInterval: cfg.HeartbeatInterval,
		MaxHeartbeatRate:  cfg.MaxHeartbeatRate,
		HostSeries:        hostseries.New(cfg.HostMetricsWindow, cfg.HeartbeatInterval),
		// A held Hello should outlast an election (the heartbeat timeout,
		// a pre-vote that may fail once, the vote): two election
		// timeouts, at least the default hold and at most what the agent
		// waits for its Welcome. Refused sooner, a fleet waits out its
		// backoff after the new leader is ready.
		ElectionHold: max(2*electionTimeout(cfg), agentapi.DefaultElectionHold),
		// A follower answers an agent's Hello with a Redirect to the
		// leader's gRPC address, which raft carries (raftnode.Address),
		// but only to a leader it heard from recently: raft keeps naming
		// a dead leader until its heartbeat timer fires, and a Redirect
		// there costs the agent a failed dial and a backoff. Without a
		// live leader the Hello is held (agentapi/await.go). Invariant 2
		// is unaffected: a Redirect renews no lease either way.
		LeaderGRPCAddr: func() string {
			// Raft names this node before its barrier: the agent is told
			// to retry, not redirected to where it already is.
			if addr := node.LiveLeaderGRPCAddr(); addr != advertise {
				return addr
			}
			return ""
		},
		Logger: logger,
	})
	c.api = controlapi.New(controlapi.Config{
		Raft:                 node,
		State:                c.state,
		Hub:                  c.hub,
		DefaultFaultDuration: cfg.DefaultFaultDuration,
		MaxGroupPercent:      cfg.MaxGroupPercent,
		MaxGroupAgents:       cfg.MaxGroupAgents,
		Logger:               logger,
	})
	c.runner = runner.New(runner.Config{
		Raft:   leaderGate{node: node, leading: &c.leading},
		State:  c.state,
		Groups: c.api,
		// Host probes read the agents' host metrics that this node keeps
		// while it leads, which is when the runner runs.
		Probes: runner.ProbePackage{Hosts: c.hub.HostMetrics()},
		Logger: logger,
	})
	c.api.SetExperiments(c.runner)
	c.health = health.NewServer()
	c.setServing(false)
	for _, svc := range []string{turbulencev1.ControlService_ServiceDesc.ServiceName, turbulencev1.ClusterService_ServiceDesc.ServiceName} {
		c.health.SetServingStatus(svc, healthpb.HealthCheckResponse_NOT_SERVING)
	}
	turbulencev1.RegisterControlServiceServer(server, c.api)
	turbulencev1.RegisterAgentServiceServer(server, c.hub)
	probeTLS, err := tlsutil.ClientConfig(cfg.TLS, "")
	if err != nil {
		_ = grpcLis.Close()
		_ = node.Shutdown()
		fwd.Close()
		return nil, fmt.Errorf("probe TLS: %w", err)
	}
	c.probeTLS = probeTLS
	turbulencev1.RegisterClusterServiceServer(server, clusterapi.New(node, c.probeController))
	healthpb.RegisterHealthServer(server, c.health)
	reflection.Register(server)
	return c, nil
}

// refusedConn records a connection closed for a cap on listener.
func (c *Controller) refusedConn(listener string) func(net.Addr, string) {
	return func(remote net.Addr, reason string) {
		c.refusals.Record(listener, refusal.ReasonConnectionLimit, "peer at "+remote.String(), "connection", "over the "+reason)
	}
}

// Refusals is the count of refusals under k (listener and reason).
func (c *Controller) Refusals(k refusal.Key) uint64 { return c.refusals.Count(k) }

// ConnStats counts the connections of the raft and gRPC ports (held
// now, and refused for a cap since the start).
func (c *Controller) ConnStats() (raft, grpc connlimit.Stats) {
	return c.node.RaftConnStats(), c.grpcLis.Stats()
}

// GRPCAddr is the address the gRPC server is bound to.
func (c *Controller) GRPCAddr() string { return c.grpcLis.Addr().String() }

// RaftAddr is the address raft is bound to.
func (c *Controller) RaftAddr() string { return c.node.Addr() }

// IsLeader reports whether this node leads and has caught up with the log.
func (c *Controller) IsLeader() bool { return c.leading.Load() }

// NodeID is this node's raft server ID.
func (c *Controller) NodeID() string { return c.cfg.NodeID }

// RaftLeader reports whether raft considers this node the leader now;
// unlike IsLeader it does not wait for the post-election barrier.
func (c *Controller) RaftLeader() bool { return c.node.IsLeader() }

// LeaderID is the raft server ID of the leader this node knows of, "" if
// none.
func (c *Controller) LeaderID() string { return c.node.LeaderID() }

// Servers is the raft configuration as this node knows it.
func (c *Controller) Servers() ([]raftnode.Server, error) { return c.node.Servers() }

// HostMetrics is the series of the agents' host metrics, kept from their
// heartbeats while this node leads (controller/hostseries): the
// experiment runner's host probes read it on the leader.
func (c *Controller) HostMetrics() *hostseries.Store { return c.hub.HostMetrics() }

// ConnectedAgents is how many agents hold a session with this node (only
// the leader keeps sessions).
func (c *Controller) ConnectedAgents() int { return c.hub.ConnectedAgents() }

// HeartbeatInterval is the heartbeat interval this node tells its agents
// now, paced to the fleet's size (docs/design.md, "Heartbeat pacing").
func (c *Controller) HeartbeatInterval() time.Duration { return c.hub.HeartbeatInterval() }

// LastRaftIndex is the index of the last entry in this node's raft log.
// Tests use it to prove that a refused request proposed nothing.
func (c *Controller) LastRaftIndex() uint64 { return c.node.LastIndex() }

// WaitLeader blocks until this node is the leader and ready to serve, or
// ctx is done. Leadership is only taken up while Run runs.
func (c *Controller) WaitLeader(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !c.leading.Load() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for raft leadership: %w", ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// Run serves until ctx is done, then shuts down in the order written in
// the package doc and returns. Run may be called once.
func (c *Controller) Run(ctx context.Context) error {
	err := errors.New("controller: Run called twice")
	c.runOnce.Do(func() { err = c.run(ctx) })
	return err
}

func (c *Controller) run(ctx context.Context) error {
	serveErr := make(chan error, 1)
	go func() { serveErr <- c.server.Serve(c.grpcLis) }()

	leaderCtx, stopLeadership := context.WithCancel(context.Background())
	leadershipDone := make(chan struct{})
	go func() {
		defer close(leadershipDone)
		c.followLeadership(leaderCtx)
	}()
	// Every node answers reads and forwards writes (controller/forward),
	// so the control and cluster services serve on followers too; the
	// overall status and AgentService follow leadership.
	for _, svc := range []string{turbulencev1.ControlService_ServiceDesc.ServiceName, turbulencev1.ClusterService_ServiceDesc.ServiceName} {
		c.health.SetServingStatus(svc, healthpb.HealthCheckResponse_SERVING)
	}
	joinDone := make(chan struct{})
	go func() {
		defer close(joinDone)
		// A node with raft state is a member already: it rejoins by
		// itself, from its log, and never asks again nor bootstraps.
		switch {
		case len(c.cfg.Join) == 0 || c.node.HadState():
		case c.cfg.BootstrapExpect > 0:
			c.expectLoop(leaderCtx)
		default:
			c.joinLoop(leaderCtx)
		}
	}()
	c.logger.Info("controller started", "grpc_addr", c.GRPCAddr(), "raft_addr", c.RaftAddr())

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		runErr = fmt.Errorf("gRPC server: %w", err)
	}
	c.logger.Info("controller stopping")

	// 0. A leader hands leadership over first, while it still serves:
	// the cluster has a new leader at once instead of after an election
	// timeout, writes in flight here are retried there by the forwarder,
	// and the agents whose sessions end below are redirected to it.
	// Invariant 2: agents lose their session for a moment only, far
	// shorter than the lease TTL, so nothing is reverted.
	c.handOverLeadership()

	// 1. Stop accepting API calls.
	c.setServing(false)
	for _, svc := range []string{turbulencev1.ControlService_ServiceDesc.ServiceName, turbulencev1.ClusterService_ServiceDesc.ServiceName} {
		c.health.SetServingStatus(svc, healthpb.HealthCheckResponse_NOT_SERVING)
	}
	c.api.Stop()
	c.hub.Close()
	c.gracefulStop()
	c.fwd.Close()
	// 2. Stop leader-only loops (and a join still being asked for).
	stopLeadership()
	<-leadershipDone
	<-joinDone
	// 3 and 4. Close raft, then its stores.
	if err := c.node.Shutdown(); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("shut down raft: %w", err))
	}
	c.logger.Info("controller stopped")
	return runErr
}

// SkipLeadershipTransfer makes the next stop of Run skip the leadership
// hand-over, so that the other nodes find out about this one as if it
// had crashed: by their heartbeat timeout. Tests use it to stand in for
// kill -9 in-process (controllertest Node.Crash); a real stop should
// always hand over.
func (c *Controller) SkipLeadershipTransfer() { c.skipTransfer.Store(true) }

// handOverLeadership transfers raft leadership to another voter when
// this node leads, bounded by leadershipTransferTimeout. Errors are
// logged, never returned: a node with no other voter (a one-node cluster)
// or a transfer that fails stops all the same.
func (c *Controller) handOverLeadership() {
	if c.skipTransfer.Load() || !c.node.IsLeader() {
		return
	}
	start := time.Now()
	to, err := c.node.TransferLeadership(leadershipTransferTimeout)
	switch {
	case errors.Is(err, raftnode.ErrNoOtherVoter):
		c.logger.Info("no other voter to hand leadership to; stopping")
	case err != nil:
		c.logger.Warn("leadership hand-over failed; the other nodes elect a leader after their election timeout", "error", err)
	default:
		c.logger.Info("leadership handed over", "new_leader", to, "took", time.Since(start).Round(time.Millisecond))
	}
}

func (c *Controller) gracefulStop() {
	done := make(chan struct{})
	go func() {
		c.server.GracefulStop()
		close(done)
	}()
	t := time.NewTimer(gracefulStopTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		c.logger.Warn("calls still running after graceful stop timeout; cutting them")
		c.server.Stop()
		<-done
	}
}

// electionTimeout is the raft election timeout this node runs with.
func electionTimeout(cfg Config) time.Duration {
	if cfg.RaftElectionTimeout > 0 {
		return cfg.RaftElectionTimeout
	}
	return raftnode.DefaultElectionTimeout
}

// leaderGate is the raft node as the agent hub sees it: a leader only
// once the leader-only work may start (after the barrier), so that no
// agent session acts on a state that lacks committed entries.
type leaderGate struct {
	node    *raftnode.Node
	leading *atomic.Bool
}

func (g leaderGate) Apply(ctx context.Context, e *raftv1.LogEntry) (any, error) {
	return g.node.Apply(ctx, e)
}

func (g leaderGate) IsLeader() bool { return g.leading.Load() && g.node.IsLeader() }

// forwardGate is the raft node as controller/forward sees it: a leader
// only after the barrier, like leaderGate. Between election and barrier
// raft names this very node as leader; its address is then hidden, so
// that the forwarder holds the call (and retries) instead of forwarding
// it to itself.
type forwardGate struct {
	node    *raftnode.Node
	leading *atomic.Bool
	self    string
}

func (g forwardGate) IsLeader() bool { return g.leading.Load() && g.node.IsLeader() }

// LeaderGRPCAddr names only a leader heard from recently (see the hub's
// LeaderGRPCAddr in New): a write is held and retried rather than sent
// to a leader that may be dead, where the dial could hang for the whole
// call timeout (a partition) instead of failing at once.
func (g forwardGate) LeaderGRPCAddr() string {
	if addr := g.node.LiveLeaderGRPCAddr(); addr != g.self {
		return addr
	}
	return ""
}

func (g forwardGate) Barrier(timeout time.Duration) error { return g.node.Barrier(timeout) }

// leaderLoop is the running leader-only work of one leadership term.
type leaderLoop struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (c *Controller) startLeaderLoop(ctx context.Context) *leaderLoop {
	ctx, cancel := context.WithCancel(ctx)
	l := &leaderLoop{cancel: cancel, done: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Go(func() { _ = c.hub.RunLeaderLoop(ctx) })
	// Experiments are leader-only work too: the runner of this term
	// first applies the failover rule to what an earlier term left
	// running (controller/experiment/runner).
	wg.Go(func() { _ = c.runner.Run(ctx) })
	// Retention is proposed by the leader alone (retention.go).
	wg.Go(func() { c.pruneLoop(ctx) })
	go func() {
		defer close(l.done)
		wg.Wait()
	}()
	return l
}

func (l *leaderLoop) stop() {
	l.cancel()
	<-l.done
}

// followLeadership starts the leader-only work when this node becomes
// leader and stops it when it is not any more, until ctx is done.
func (c *Controller) followLeadership(ctx context.Context) {
	var loop *leaderLoop
	stepDown := func() {
		c.leading.Store(false)
		c.setServing(false)
		if loop != nil {
			loop.stop()
			loop = nil
		}
	}
	defer stepDown()
	for {
		select {
		case <-ctx.Done():
			return
		case isLeader := <-c.node.LeaderCh():
			if !isLeader {
				c.logger.Warn("lost raft leadership")
				stepDown()
				c.hub.CloseSessions("this controller is no longer the leader")
				continue
			}
			// Act only on a state that holds every committed entry.
			if err := c.node.Barrier(barrierTimeout); err != nil {
				c.logger.Error("new leader could not catch up; not taking up leadership", "error", err)
				continue
			}
			if loop == nil {
				loop = c.startLeaderLoop(ctx)
			}
			c.leading.Store(true)
			c.setServing(true)
			if !c.readyLogged {
				c.readyLogged = true
				c.logger.Info("controller ready", "grpc_addr", c.GRPCAddr())
			} else {
				c.logger.Info("raft leadership acquired", "grpc_addr", c.GRPCAddr())
			}
		}
	}
}

// setServing publishes readiness on the health service, overall and per
// service, so load balancers and grpcurl see the leader.
func (c *Controller) setServing(serving bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if serving {
		st = healthpb.HealthCheckResponse_SERVING
	}
	for _, svc := range []string{"", turbulencev1.AgentService_ServiceDesc.ServiceName} {
		c.health.SetServingStatus(svc, st)
	}
}
