package agentapi

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/turbulence-sre/turbulence/controller/hostseries"
	"github.com/turbulence-sre/turbulence/controller/state"
	raftv1 "github.com/turbulence-sre/turbulence/proto/turbulence/raft/v1"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Proposer is the part of the raft node the hub needs.
type Proposer interface {
	Apply(ctx context.Context, e *raftv1.LogEntry) (any, error)
	IsLeader() bool
}

// Config configures a Hub.
type Config struct {
	Raft  Proposer
	State *state.State
	// LeaseTTL is sent to agents in Welcome and LeaseRenewal (invariant 2).
	LeaseTTL time.Duration
	// HeartbeatInterval is sent to agents in Welcome: how often each
	// agent beats while the fleet is small enough (MaxHeartbeatRate).
	HeartbeatInterval time.Duration
	// MaxHeartbeatRate is how many heartbeats a second the leader plans
	// for across the fleet: a larger fleet is told to beat slower
	// (pace.go). Zero means DefaultMaxHeartbeatRate.
	MaxHeartbeatRate int
	// LeaderGRPCAddr returns the gRPC address of the leader when this
	// node is not it, or "" when it is not known — or not heard from
	// recently: a follower must not send agents to a leader that may be
	// dead (see await.go). May be nil.
	LeaderGRPCAddr func() string
	// HostSeries keeps the host metrics of the agents' heartbeats
	// (controller/hostseries); nil makes one that keeps
	// hostseries.DefaultWindow at HeartbeatInterval.
	HostSeries *hostseries.Store
	Logger     *slog.Logger
	// ElectionHold is how long a node that is not the leader holds a
	// Hello while no leader is known (await.go): long enough to cover an
	// election, at most MaxElectionHold. Zero means DefaultElectionHold.
	ElectionHold time.Duration
}

// Defaults from docs/protocol.md.
const (
	DefaultLeaseTTL          = 15 * time.Second
	DefaultHeartbeatInterval = time.Second
)

// Liveness is the soft state the leader keeps about an agent.
type Liveness struct {
	// Connected: its session is open and it was heard from within two
	// heartbeat intervals (see silentFor).
	Connected     bool
	LastSeen      time.Time
	LocallyHalted bool
}

// agentSoft is the hub's private per-agent soft state.
type agentSoft struct {
	Liveness
	// disconnectedAt is when the last session ended; zero if it never
	// connected to this node.
	disconnectedAt time.Time
	// held is the latest status of each fault the agent holds, by ID.
	held map[string]*turbulencev1.FaultStatus
	// last is the latest status the agent reported for each fault it
	// held, kept across disconnects (unlike held) until the fault's end
	// is recorded: the measured effect that an ended or UNCONFIRMED
	// fault keeps (see withLastEffect).
	last map[string]*turbulencev1.FaultStatus
}

// Hub serves AgentService and dispatches commands to connected agents.
type Hub struct {
	turbulencev1.UnimplementedAgentServiceServer

	cfg    Config
	logger *slog.Logger

	mu       sync.Mutex
	sessions map[string]*session   // by agent ID; at most one per agent
	open     atomic.Int64          // len(sessions), read without mu (pace)
	agents   map[string]*agentSoft // by agent ID
	closed   bool                  // set by Close; no new sessions
	// departing are the agents the last Departed call named, until the
	// prune entry that removes them is decided (DepartedDone): one of
	// them that comes back meanwhile is registered through raft even if
	// nothing changed (registeredAs), so that the entry cannot remove
	// an agent whose session is open.
	departing map[string]bool

	metrics *hubMetrics
	ends    endLog // rate limit of the session-end log lines
}

// New returns a Hub.
func New(cfg Config) *Hub {
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if cfg.ElectionHold <= 0 {
		cfg.ElectionHold = DefaultElectionHold
	}
	cfg.ElectionHold = min(cfg.ElectionHold, MaxElectionHold)
	if cfg.MaxHeartbeatRate <= 0 {
		cfg.MaxHeartbeatRate = DefaultMaxHeartbeatRate
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.HostSeries == nil {
		cfg.HostSeries = hostseries.New(hostseries.DefaultWindow, cfg.HeartbeatInterval)
	}
	return &Hub{
		cfg:      cfg,
		logger:   cfg.Logger.With("component", "agentapi"),
		sessions: make(map[string]*session),
		agents:   make(map[string]*agentSoft),
		metrics:  newHubMetrics(),
	}
}

// soft returns the agent's soft state, creating it. Caller holds h.mu.
func (h *Hub) soft(agentID string) *agentSoft {
	a, ok := h.agents[agentID]
	if !ok {
		a = &agentSoft{held: make(map[string]*turbulencev1.FaultStatus), last: make(map[string]*turbulencev1.FaultStatus)}
		h.agents[agentID] = a
	}
	return a
}

// Liveness returns the soft liveness of an agent; ok is false when this
// node has never heard from it.
func (h *Hub) Liveness(agentID string) (Liveness, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	a, ok := h.agents[agentID]
	if !ok {
		return Liveness{}, false
	}
	now := time.Now()
	lv := a.Liveness
	lv.LastSeen = h.lastSeen(a, h.sessions[agentID], now)
	if lv.Connected && h.silent(a, h.sessions[agentID], now) {
		lv.Connected = false
	}
	return lv, true
}

// silent reports whether an agent whose session is open has missed its
// heartbeats: nothing heard for two intervals, i.e. one beat overdue by a
// whole interval. Its stream may be half-open (a host that vanished
// without closing its TCP connection, a stopped process): gRPC keepalive
// would notice only after tens of seconds, and meanwhile the agent must
// not be shown connected, nor its faults treated as reported on.
//
// Silence is judged from the stream (session.lastHeard), not from the
// handler's progress: a leader slow to process reports (raft writes
// under load) must not take the agent for gone.
// Caller holds h.mu; s is the agent's open session, or nil.
func (h *Hub) silent(a *agentSoft, s *session, now time.Time) bool {
	after := 2 * h.cfg.HeartbeatInterval
	if s != nil {
		after = s.silentAfter(now)
	}
	return now.Sub(h.lastSeen(a, s, now)) > after
}

// lastSeen is when the agent was last heard: by its session's stream,
// or by the handler (a Hello or heartbeat handled). Caller holds h.mu.
func (h *Hub) lastSeen(a *agentSoft, s *session, now time.Time) time.Time {
	seen := a.LastSeen
	if s != nil {
		if t := s.lastHeard(now); t.After(seen) {
			seen = t
		}
	}
	return seen
}

// HostMetrics is the series of the agents' host metrics, kept from
// their heartbeats while this node leads: the experiment runner's host
// probes and GetAgentMetrics read it.
func (h *Hub) HostMetrics() *hostseries.Store { return h.cfg.HostSeries }

// HeldStatus returns the latest status an agent reported for a fault it
// holds.
func (h *Hub) HeldStatus(agentID, faultID string) (*turbulencev1.FaultStatus, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	a, ok := h.agents[agentID]
	if !ok {
		return nil, false
	}
	st, ok := a.held[faultID]
	if !ok {
		return nil, false
	}
	return clone(st), true
}

// DispatchApply sends ApplyFault to the fault's agent if it is connected.
// If it is not, the agent gets the fault at its next Hello.
func (h *Hub) DispatchApply(f *turbulencev1.Fault) {
	if s := h.session(f.GetAgentId()); s != nil {
		h.sendApply(s, f, f.GetCreatedAt().AsTime())
	}
}

// DispatchRevert sends RevertFault to the fault's agent if it is
// connected; otherwise the next Hello reconciliation sends it.
func (h *Hub) DispatchRevert(f *turbulencev1.Fault, reason string) {
	if s := h.session(f.GetAgentId()); s != nil {
		h.sendRevert(s, f.GetId(), reason)
	}
}

// BroadcastHalt sends HaltAgent to every connected agent (invariant 5).
// Agents that connect later learn it from Welcome.halted.
func (h *Hub) BroadcastHalt(reason string) {
	h.broadcast(&turbulencev1.ControllerMessage{Msg: &turbulencev1.ControllerMessage_Halt{Halt: &turbulencev1.HaltAgent{Reason: reason}}})
}

// BroadcastResume sends ResumeAgent to every connected agent.
func (h *Hub) BroadcastResume() {
	h.broadcast(&turbulencev1.ControllerMessage{Msg: &turbulencev1.ControllerMessage_Resume{Resume: &turbulencev1.ResumeAgent{}}})
}

func (h *Hub) broadcast(m *turbulencev1.ControllerMessage) {
	// Under h.mu so that a session registering concurrently either is in
	// the map now or reads the new halt flag for its Welcome.
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.sessions {
		s.enqueue(m)
	}
}

// CloseSessions ends every session when this node stops being the
// leader (Close does it for a shutdown). Agents reconnect and find the leader. A session
// registering concurrently is refused by register unless this node still
// leads (both hold h.mu).
func (h *Hub) CloseSessions(reason string) {
	h.closeSessions(CauseNotLeader, reason)
	// Soft state is the leader's only: should this node lead again, its
	// series must not join an old stretch to a new one across the gap.
	h.cfg.HostSeries.Reset()
}

// closeSessions ends every session with reason, counted under label.
func (h *Hub) closeSessions(label, reason string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.sessions {
		s.endAs(label, status.Error(codes.Unavailable, reason))
	}
}

// Close ends every session and refuses new ones, for shutdown.
func (h *Hub) Close() {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.closeSessions(CauseShutdown, errShuttingDown)
}

// ConnectedAgents returns how many agents have a session open.
func (h *Hub) ConnectedAgents() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.sessions)
}

func (h *Hub) session(agentID string) *session {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sessions[agentID]
}

// sendApply sends ApplyFault; start, when not zero, is when the
// ApplyFault call made the fault (see command.start).
func (h *Hub) sendApply(s *session, f *turbulencev1.Fault, start time.Time) {
	id := newCommandID()
	h.mu.Lock()
	s.commands[id] = command{kind: commandApply, faultID: f.GetId(), start: start}
	h.mu.Unlock()
	s.enqueue(&turbulencev1.ControllerMessage{Msg: &turbulencev1.ControllerMessage_Apply{Apply: &turbulencev1.ApplyFault{CommandId: id, Fault: f}}})
}

func (h *Hub) sendRevert(s *session, faultID, reason string) {
	h.sendRevertAs(s, commandRevert, faultID, reason)
}

// sendQuery sends a RevertFault that asks what became of a fault the
// agent did not hold at its Hello (reconcile.go).
func (h *Hub) sendQuery(s *session, faultID, reason string) {
	h.sendRevertAs(s, commandQuery, faultID, reason)
}

func (h *Hub) sendRevertAs(s *session, kind commandKind, faultID, reason string) {
	id := newCommandID()
	h.mu.Lock()
	s.commands[id] = command{kind: kind, faultID: faultID}
	h.mu.Unlock()
	s.enqueue(&turbulencev1.ControllerMessage{Msg: &turbulencev1.ControllerMessage_Revert{Revert: &turbulencev1.RevertFault{CommandId: id, FaultId: faultID, Reason: reason}}})
}

// Departed returns those of ids (registered agents) that this node has
// not heard from for longer than age: no open session, and nothing heard
// since the later of its last message and this leadership's start
// (leaderSince). A new leader thus waits a whole age before it calls any
// agent departed, as it does for leases. The state decides the rest
// (state.ApplyPrune): an agent that registered again or holds a live
// fault is kept. Their soft state is dropped here too, so that the hub
// forgets them with the state.
func (h *Hub) Departed(ids []string, leaderSince, now time.Time, age time.Duration) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, id := range ids {
		if _, open := h.sessions[id]; open {
			continue
		}
		since := leaderSince
		if a, ok := h.agents[id]; ok {
			for _, t := range []time.Time{a.LastSeen, a.disconnectedAt} {
				if t.After(since) {
					since = t
				}
			}
		}
		if now.Sub(since) > age {
			out = append(out, id)
		}
	}
	h.departing = make(map[string]bool, len(out))
	for _, id := range out {
		h.departing[id] = true
	}
	return out
}

// DepartedDone says the prune entry for the last Departed call has been
// decided (applied or failed): the agents it named are ordinary again.
func (h *Hub) DepartedDone() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.departing = nil
}

// isDeparting reports whether the last Departed call named the agent
// and its prune entry is not decided yet.
func (h *Hub) isDeparting(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.departing[id]
}

// Forget drops the soft state of agents that the state no longer holds
// and that have no session now.
func (h *Hub) Forget(ids []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range ids {
		if _, open := h.sessions[id]; !open {
			delete(h.agents, id)
		}
	}
}
