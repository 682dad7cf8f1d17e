package agentapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/turbulence-sre/turbulence/internal/limits"
	"github.com/turbulence-sre/turbulence/internal/refusal"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	raftv1 "github.com/turbulence-sre/turbulence/proto/turbulence/raft/v1"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// sendQueueSize bounds the commands waiting for one agent. Far more than
// a healthy agent ever has outstanding; an agent that lets it fill is
// disconnected (see the package doc).
const sendQueueSize = 256

// raftWriteTimeout bounds each raft write made on an agent's behalf.
const raftWriteTimeout = 10 * time.Second

type commandKind int

const (
	commandApply commandKind = iota + 1
	commandRevert
	// commandQuery is a RevertFault sent at the Hello for a live fault the
	// agent did not hold, to learn what became of it (reconcile.go).
	commandQuery
)

// command is a command sent to an agent and not answered yet.
type command struct {
	kind    commandKind
	faultID string
	// start, for an apply dispatched by the ApplyFault call, is when that
	// call made the fault (its created_at): the apply latency runs from
	// there to the agent's verdict. Zero for an apply re-sent at a Hello,
	// whose wait includes the agent's absence.
	start time.Time
}

// session is one open Connect stream.
type session struct {
	agentID string
	actor   string // "agent/<id>", recorded on the raft writes it causes
	// box queues what is sent to the agent, and sends it (outbox.go).
	box    outbox
	ctx    context.Context
	cancel context.CancelCauseFunc
	// commands is guarded by Hub.mu.
	commands map[string]command
	// heard is when a message of the agent's was last read off the
	// stream (Unix nanoseconds), stamped by the receiving goroutine
	// before the handler sees it; waiting is set while that goroutine
	// holds a message the handler has not taken yet. Together they say
	// whether the agent is alive without waiting for the controller's own
	// work (see lastHeard).
	heard   atomic.Int64
	waiting atomic.Bool
	// interval is the heartbeat interval the agent was last told
	// (nanoseconds); slow and slowUntil, the longer one it was told
	// before and until when it still counts (pace.go).
	interval  atomic.Int64
	slow      atomic.Int64
	slowUntil atomic.Int64
}

// lastHeard is when the agent was last known to be speaking on this
// stream. While the receiving goroutine waits for the handler, the agent
// counts as heard now: the stream delivered a message that the
// controller is too busy to take, so the silence that follows is the
// controller's, not the agent's, and must not cost the agent its faults.
func (s *session) lastHeard(now time.Time) time.Time {
	if s.waiting.Load() {
		return now
	}
	return time.Unix(0, s.heard.Load())
}

// renewLease has the session's sender renew the agent's lease next,
// without blocking and ahead of queued commands. Only the leader renews
// (invariant 2); a heartbeat that reaches a deposed leader ends the
// session instead (onHeartbeat).
func (h *Hub) renewLease(s *session) {
	if !h.cfg.Raft.IsLeader() {
		return
	}
	s.box.wantRenewal()
}

// enqueue queues a message for the agent without blocking; a full queue
// ends the session.
func (s *session) enqueue(m *turbulencev1.ControllerMessage) {
	if s.ctx.Err() != nil {
		return
	}
	if !s.box.push(m) {
		s.endAs(CauseSendQueueFull, status.Error(codes.ResourceExhausted, "agent is not reading its session; closing it"))
	}
}

// end closes the session with a status the agent will see.
func (s *session) end(cause error) { s.cancel(cause) }

// endAs is end with the cause label the session's end is counted under
// (MetricSessionsEnded).
func (s *session) endAs(label string, cause error) { s.cancel(&endedError{label: label, err: cause}) }

// verifiedFacts is the agent's facts with cert_not_after taken from the
// certificate this session was verified with, not from the agent's word:
// turbctl's expiry warning must hold even for an agent that reports
// nothing or the wrong date (an old agent, a clock far off).
func verifiedFacts(ctx context.Context, facts *turbulencev1.HostFacts) *turbulencev1.HostFacts {
	cert, err := tlsutil.PeerCertificate(ctx)
	if err != nil {
		return facts
	}
	if facts == nil {
		facts = &turbulencev1.HostFacts{}
	} else {
		facts = proto.CloneOf(facts)
	}
	facts.CertNotAfter = timestamppb.New(cert.NotAfter)
	return facts
}

var errReplaced = status.Error(codes.Aborted, "replaced by a newer session of the same agent")

// errNotLeader is the message of a session ended or refused because this
// node does not lead (any more); the agent reconnects and finds the leader.
const errNotLeader = "this controller is no longer the leader; reconnect to find the new one"

// errShuttingDown is the message of a session ended because the
// controller stops.
const errShuttingDown = "controller is shutting down"

// Connect is the agent's session (docs/protocol.md).
func (h *Hub) Connect(stream grpc.BidiStreamingServer[turbulencev1.AgentMessage, turbulencev1.ControllerMessage]) error {
	ctx := stream.Context()
	id, err := tlsutil.PeerIdentity(ctx)
	if err != nil {
		return status.Errorf(codes.PermissionDenied, "agent session: %v", err)
	}
	if id.Role != tlsutil.RoleAgent {
		return status.Errorf(codes.PermissionDenied, "agent session: certificate %s is not an agent certificate", id)
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	// Field bounds before anything else (docs/limits.md): a Hello with
	// 4 MiB of labels is refused here, before it can be registered
	// through raft, however often the agent reconnects.
	if err := limits.Check(first); err != nil {
		return status.Errorf(codes.InvalidArgument, "agent session: message over its bounds (docs/limits.md): %v", err)
	}
	hello := first.GetHello()
	if hello == nil {
		return status.Error(codes.InvalidArgument, "agent session: the first message must be a Hello")
	}
	if hello.GetAgentId() != id.Name {
		// Counted apart from other refusals: an agent posing as another.
		return refusal.WithReason(codes.PermissionDenied, refusal.ErrorInfoWrongAgentID,
			fmt.Sprintf("agent session: hello.agent_id %q does not match the certificate's agent name %q", hello.GetAgentId(), id.Name))
	}
	// During an election the Hello is held until a leader exists
	// (await.go), not refused into the agent's backoff.
	if !h.awaitLeader(ctx) {
		return h.redirect(stream)
	}
	logger := h.logger.With("agent_id", id.Name)

	agent := &turbulencev1.Agent{
		Id:           id.Name,
		Labels:       hello.GetLabels(),
		Facts:        verifiedFacts(ctx, hello.GetFacts()),
		Capabilities: hello.GetCapabilities(),
	}
	if !h.registeredAs(agent) {
		regCtx, cancelReg := context.WithTimeout(ctx, raftWriteTimeout)
		_, err = h.cfg.Raft.Apply(regCtx, &raftv1.LogEntry{
			Actor: id.String(),
			Cmd:   &raftv1.LogEntry_RegisterAgent{RegisterAgent: &raftv1.RegisterAgent{Agent: agent}},
		})
		cancelReg()
		if err != nil {
			logger.Warn("cannot register agent", "error", err)
			return status.Errorf(codes.Unavailable, "register agent %q: %v", id.Name, err)
		}
	}

	return h.serve(ctx, id.Name, id.String(), hello, stream, logger)
}

// registeredAs reports whether the state holds the agent exactly as its
// Hello describes it: then its registration would change nothing, and
// is not written. A fleet re-attaching to a new leader (every agent at
// once) thus costs no raft write and leaves the event log to the events
// that matter; an agent whose labels, facts (its certificate renewed)
// or capabilities changed is registered again.
//
// An agent that retention is about to remove (isDeparting) is always
// written: its registration, ordered before or after the prune entry,
// keeps it or brings it back.
func (h *Hub) registeredAs(a *turbulencev1.Agent) bool {
	if h.isDeparting(a.GetId()) {
		return false
	}
	cur, ok := h.cfg.State.Agent(a.GetId())
	return ok && maps.Equal(cur.GetLabels(), a.GetLabels()) &&
		proto.Equal(cur.GetFacts(), a.GetFacts()) && proto.Equal(cur.GetCapabilities(), a.GetCapabilities())
}

// agentStream is the part of the Connect stream a session uses.
type agentStream interface {
	Send(*turbulencev1.ControllerMessage) error
	Recv() (*turbulencev1.AgentMessage, error)
}

// serve runs a registered agent's session on stream until it ends.
func (h *Hub) serve(ctx context.Context, agentID, actor string, hello *turbulencev1.Hello, stream agentStream, logger *slog.Logger) error {
	sctx, cancel := context.WithCancelCause(ctx)
	s := &session{
		agentID:  agentID,
		actor:    actor,
		ctx:      sctx,
		cancel:   cancel,
		commands: make(map[string]command),
	}
	s.heard.Store(time.Now().UnixNano())
	s.box.attach(func(m *turbulencev1.ControllerMessage) bool { return h.send(s, stream, m) },
		func() *turbulencev1.ControllerMessage { return h.leaseRenewal(s) })
	// Deferred in reverse: end the session, wait for a send in flight
	// (no Send after the handler returns), then forget the session.
	defer h.unregister(s)
	defer s.box.stop()
	defer cancel(nil)

	if err := h.register(s, hello.GetLocallyHalted()); err != nil {
		return err
	}
	logger.Info("agent connected", "held_faults", len(hello.GetFaults()))
	h.reconcileHello(sctx, s, hello)

	msgs := make(chan *turbulencev1.AgentMessage)
	recvErr := make(chan error, 1)
	// Recv runs on its own goroutine so that ending the session (replaced,
	// leadership lost) does not wait for the agent's next message. It
	// returns once the handler has returned and gRPC cancels the stream.
	go func() {
		for {
			m, err := stream.Recv()
			if err == nil {
				// Heartbeats and results reach raft too (UpdateFault
				// statuses and reasons): the same bounds as the Hello.
				if cerr := limits.Check(m); cerr != nil {
					err = status.Errorf(codes.InvalidArgument, "agent session: message over its bounds (docs/limits.md): %v", cerr)
				}
			}
			if err != nil {
				recvErr <- err
				return
			}
			s.heard.Store(time.Now().UnixNano())
			if !h.handOver(s, msgs, m) {
				return
			}
		}
	}()
	for {
		select {
		case <-sctx.Done():
			cause := context.Cause(sctx)
			h.sessionEnded(logger, endCause(cause), cause)
			if _, ok := status.FromError(cause); ok && cause != nil {
				return cause
			}
			return status.FromContextError(ctx.Err()).Err()
		case err := <-recvErr:
			if errors.Is(err, io.EOF) {
				h.sessionEnded(logger, CauseAgentClosed, nil)
				return nil
			}
			h.sessionEnded(logger, recvCause(err), err)
			return err
		case m := <-msgs:
			h.handle(sctx, s, m)
		}
	}
}

// redirect answers a Connect on a node that is not the leader.
func (h *Hub) redirect(stream grpc.BidiStreamingServer[turbulencev1.AgentMessage, turbulencev1.ControllerMessage]) error {
	var leader string
	if h.cfg.LeaderGRPCAddr != nil {
		leader = h.cfg.LeaderGRPCAddr()
	}
	if leader == "" {
		return status.Error(codes.Unavailable, "this controller is not the leader and no leader is known; retry")
	}
	return stream.Send(&turbulencev1.ControllerMessage{Msg: &turbulencev1.ControllerMessage_Redirect{Redirect: &turbulencev1.Redirect{LeaderAddress: leader}}})
}

// handOver gives m to the session's handler. While the handler is busy
// (raft writes of earlier reports that a loaded leader is slow to
// commit), the agent keeps its lease: it is renewed every heartbeat
// interval for as long as the wait lasts, and the agent counts as heard
// (lastHeard). Overload thus makes reports and commands slow, never an
// agent revert. It returns false when the session ended first.
func (h *Hub) handOver(s *session, msgs chan<- *turbulencev1.AgentMessage, m *turbulencev1.AgentMessage) bool {
	select {
	case msgs <- m:
		return true
	case <-s.ctx.Done():
		return false
	default:
	}
	s.waiting.Store(true)
	defer func() {
		s.heard.Store(time.Now().UnixNano())
		s.waiting.Store(false)
	}()
	tick := time.NewTicker(time.Duration(s.interval.Load()))
	defer tick.Stop()
	for {
		select {
		case msgs <- m:
			return true
		case <-s.ctx.Done():
			return false
		case <-tick.C:
			h.renewLease(s)
		}
	}
}

// send sends m, ending the session if the stream fails.
func (h *Hub) send(s *session, stream agentStream, m *turbulencev1.ControllerMessage) bool {
	if err := stream.Send(m); err != nil {
		s.end(err)
		return false
	}
	return true
}

// register makes s the agent's session and queues the Welcome. Both
// happen under h.mu so that Welcome is the first message on the stream and
// a concurrent halt is seen either in Welcome.halted or as a HaltAgent
// broadcast, never neither (invariant 5).
func (h *Hub) register(s *session, locallyHalted bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return status.Error(codes.Unavailable, errShuttingDown)
	}
	// Sessions are leader-only work. Checked under h.mu, which
	// CloseSessions also takes: a node that stopped leading while this
	// agent's registration was in flight either refuses it here or
	// closes it there, never keeps it (and renews its lease, invariant 2)
	// as a follower.
	if !h.cfg.Raft.IsLeader() {
		return status.Error(codes.Unavailable, errNotLeader)
	}
	if old, ok := h.sessions[s.agentID]; ok {
		old.endAs(CauseSuperseded, errReplaced)
	}
	h.sessions[s.agentID] = s
	h.open.Store(int64(len(h.sessions)))
	interval := h.pace(len(h.sessions))
	h.cfg.HostSeries.SetReportInterval(interval)
	s.interval.Store(int64(interval))
	a := h.soft(s.agentID)
	a.Connected = true
	a.LastSeen = time.Now()
	a.LocallyHalted = locallyHalted
	a.held = make(map[string]*turbulencev1.FaultStatus)
	// The queue is empty: the Welcome is the session's first message.
	s.box.push(&turbulencev1.ControllerMessage{Msg: &turbulencev1.ControllerMessage_Welcome{Welcome: &turbulencev1.Welcome{
		LeaseTtl:          durationpb.New(h.cfg.LeaseTTL),
		HeartbeatInterval: durationpb.New(interval),
		Halted:            h.cfg.State.Halt().GetHalted(),
	}}})
	return nil
}

// unregister forgets s unless a newer session replaced it already.
func (h *Hub) unregister(s *session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sessions[s.agentID] != s {
		return
	}
	delete(h.sessions, s.agentID)
	h.open.Store(int64(len(h.sessions)))
	h.cfg.HostSeries.SetReportInterval(h.pace(len(h.sessions)))
	a := h.soft(s.agentID)
	now := time.Now()
	// Heard (and renewed, handOver) until now perhaps, even if the
	// handler fell behind: the agent's lease started no earlier.
	a.LastSeen = h.lastSeen(a, s, now)
	a.Connected = false
	a.disconnectedAt = now
	// What the agent holds now is unknown; the lease decides (invariant 2).
	a.held = make(map[string]*turbulencev1.FaultStatus)
}

func clone[M proto.Message](m M) M { return proto.Clone(m).(M) }
