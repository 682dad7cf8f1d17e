package controlapi

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/turbulence-sre/turbulence/controller/agentapi"
	"github.com/turbulence-sre/turbulence/controller/hostseries"
	"github.com/turbulence-sre/turbulence/controller/state"
	"github.com/turbulence-sre/turbulence/internal/limits"
	raftv1 "github.com/turbulence-sre/turbulence/proto/turbulence/raft/v1"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Proposer is the part of the raft node the API needs.
type Proposer interface {
	Apply(ctx context.Context, e *raftv1.LogEntry) (any, error)
}

// Dispatcher tells connected agents what raft has decided, and knows the
// soft state of their sessions. agentapi.Hub implements it.
type Dispatcher interface {
	DispatchApply(f *turbulencev1.Fault)
	DispatchRevert(f *turbulencev1.Fault, reason string)
	BroadcastHalt(reason string)
	BroadcastResume()
	Liveness(agentID string) (agentapi.Liveness, bool)
	HeldStatus(agentID, faultID string) (*turbulencev1.FaultStatus, bool)
	// HostMetrics is the series of the agents' host metrics, kept while
	// this node leads (GetAgentMetrics).
	HostMetrics() *hostseries.Store
}

// DefaultFaultDuration is the duration given to a spec that has none.
const DefaultFaultDuration = 5 * time.Minute

// Config configures a Server.
type Config struct {
	Raft  Proposer
	State *state.State
	Hub   Dispatcher
	// DefaultFaultDuration fills a spec without a duration (invariant 1:
	// there is no open-ended fault).
	DefaultFaultDuration time.Duration
	// MaxGroupPercent and MaxGroupAgents cap the agents one group call
	// may choose: at most this percentage of the registered fleet, and
	// at most this many (docs/groups.md). Zero means the default.
	MaxGroupPercent float64
	MaxGroupAgents  int
	// Experiments is the leader's experiment runner; nil refuses
	// StartExperiment and AbortExperiment.
	Experiments ExperimentRunner
	Logger      *slog.Logger
}

// Server implements turbulencev1.ControlServiceServer.
type Server struct {
	turbulencev1.UnimplementedControlServiceServer

	cfg    Config
	logger *slog.Logger
	// stopping is closed by Stop so that long-lived streams (WatchEvents)
	// end and a graceful server stop does not wait for them.
	stopping chan struct{}
}

var _ turbulencev1.ControlServiceServer = (*Server)(nil)

// New returns a Server.
func New(cfg Config) *Server {
	if cfg.DefaultFaultDuration <= 0 {
		cfg.DefaultFaultDuration = DefaultFaultDuration
	}
	if cfg.MaxGroupPercent <= 0 {
		cfg.MaxGroupPercent = DefaultMaxGroupPercent
	}
	if cfg.MaxGroupAgents <= 0 {
		cfg.MaxGroupAgents = DefaultMaxGroupAgents
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, logger: cfg.Logger.With("component", "controlapi"), stopping: make(chan struct{})}
}

// SetExperiments gives the server its experiment runner, which is made
// after the server (it applies groups through it). Call it before the
// server serves.
func (s *Server) SetExperiments(r ExperimentRunner) { s.cfg.Experiments = r }

// Stop ends the open WatchEvents streams. Call it once, at shutdown.
func (s *Server) Stop() { close(s.stopping) }

// writeTimeout bounds a raft write made for one API call when the caller
// gave no deadline.
const writeTimeout = 10 * time.Second

// proposeCreate proposes e, an entry that creates one record, under the
// caller's request ID (a new one when the caller sent none), stamped with
// now and actor, and returns the record the state answered with: the new
// one, or the first one made with that request ID when this is a retry.
func proposeCreate[T any](ctx context.Context, s *Server, requestID, actor string, now time.Time, e *raftv1.LogEntry) (T, error) {
	var zero T
	if requestID == "" {
		requestID = newID("r-")
	}
	e.RequestId, e.ProposedAt, e.Actor = requestID, timestamppb.New(now), actor
	resp, err := s.propose(ctx, e)
	if err != nil {
		return zero, err
	}
	created, ok := resp.(T)
	if !ok {
		return zero, fmt.Errorf("%T: unexpected raft response %T", e.GetCmd(), resp)
	}
	return created, nil
}

func (s *Server) propose(ctx context.Context, e *raftv1.LogEntry) (any, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, writeTimeout)
		defer cancel()
	}
	// Every write carries its audit record in the same entry (audit.go).
	e = withAudit(e)
	// The request was checked at the edge (BoundsUnary); this checks what
	// the server added to it, so that no entry over the bounds reaches
	// the log whatever a handler composes.
	if err := limits.Check(e); err != nil {
		return nil, err
	}
	return s.cfg.Raft.Apply(ctx, e)
}
