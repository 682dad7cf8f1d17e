package agentapi

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/turbulence-sre/turbulence/controller/state"
	raftv1 "github.com/turbulence-sre/turbulence/proto/turbulence/raft/v1"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Reasons recorded by the controller (docs/protocol.md).
const (
	ReasonDeadline      = "deadline"
	ReasonNotHeld       = "agent no longer holds it"
	ReasonLeaseExpired  = "lease expired: agent unreachable"
	reasonRevertedAgent = "reverted by agent"
	reasonUnknownOnCtrl = "the controller does not hold this fault as live"
)

const (
	stPending   = turbulencev1.FaultState_FAULT_STATE_PENDING
	stActive    = turbulencev1.FaultState_FAULT_STATE_ACTIVE
	stReverting = turbulencev1.FaultState_FAULT_STATE_REVERTING
	stReverted  = turbulencev1.FaultState_FAULT_STATE_REVERTED
	stFailed    = turbulencev1.FaultState_FAULT_STATE_FAILED
)

// handle processes one message of an open session.
func (h *Hub) handle(ctx context.Context, s *session, m *turbulencev1.AgentMessage) {
	switch msg := m.GetMsg().(type) {
	case *turbulencev1.AgentMessage_Heartbeat:
		h.onHeartbeat(ctx, s, msg.Heartbeat)
	case *turbulencev1.AgentMessage_Result:
		h.onResult(ctx, s, msg.Result)
	case *turbulencev1.AgentMessage_Hello:
		h.logger.Warn("second Hello on a session ignored", "agent_id", s.agentID)
	default:
		h.logger.Warn("unknown agent message ignored", "agent_id", s.agentID)
	}
}

// reconcileHello brings the agent and the recorded state in line after a
// (re)connect, rule by rule from docs/protocol.md step 2.
func (h *Hub) reconcileHello(ctx context.Context, s *session, hello *turbulencev1.Hello) {
	held := h.recordStatuses(ctx, s, hello.GetFaults())
	now := time.Now()
	for _, f := range h.cfg.State.Faults(state.FaultFilter{AgentID: s.agentID, ActiveOnly: true}) {
		_, isHeld := held[f.GetId()]
		passed := !f.GetDeadline().AsTime().After(now)
		switch {
		case f.GetState() == stReverting:
			h.sendRevert(s, f.GetId(), f.GetReason())
		case isHeld:
			// Handled by recordStatuses.
		case f.GetState() == stPending && !passed:
			h.sendApply(s, f)
		case passed:
			// Invariant 1: the agent's own timer took it back by now.
			h.update(ctx, s.actor, f.GetId(), stReverted, ReasonDeadline, nil)
		case f.GetState() == stActive:
			h.update(ctx, s.actor, f.GetId(), stReverted, ReasonNotHeld, nil)
		}
	}
}

// onHeartbeat records what the agent reports and renews its lease.
func (h *Hub) onHeartbeat(ctx context.Context, s *session, hb *turbulencev1.Heartbeat) {
	// Invariant 2: only the leader renews leases. A node that stopped
	// leading ends its sessions (Controller.followLeadership), but a
	// heartbeat may arrive before it gets there; it renews nothing and
	// ends the session itself, so a deposed leader (partitioned from the
	// quorum, say) can never keep an agent's faults alive.
	if !h.cfg.Raft.IsLeader() {
		s.end(status.Error(codes.Unavailable, errNotLeader))
		return
	}
	// Renew first: the lease is the safety mechanism (invariant 2) and
	// must not wait behind the raft writes below.
	s.enqueue(h.leaseRenewal())
	h.mu.Lock()
	a := h.soft(s.agentID)
	a.LastSeen = time.Now()
	a.LocallyHalted = hb.GetLocallyHalted()
	h.mu.Unlock()
	h.recordStatuses(ctx, s, hb.GetFaults())
}

// recordStatuses applies a list of fault statuses from a Hello or a
// heartbeat: ended faults are recorded through raft, live ones become the
// agent's soft "held" set (replacing the previous one, since every report
// lists all held faults), a held PENDING fault is recorded ACTIVE, a held
// ACTIVE fault the agent reports REVERTING (its revert failed and is being
// retried) is recorded REVERTING, and a held fault the controller does not
// consider live is reverted. It
// returns the held set.
func (h *Hub) recordStatuses(ctx context.Context, s *session, statuses []*turbulencev1.FaultStatus) map[string]*turbulencev1.FaultStatus {
	held := make(map[string]*turbulencev1.FaultStatus)
	for _, st := range statuses {
		if st.GetFaultId() == "" {
			continue
		}
		if state.Ended(st.GetState()) {
			h.recordEnded(ctx, s, st)
			continue
		}
		held[st.GetFaultId()] = clone(st)
	}
	h.mu.Lock()
	h.soft(s.agentID).held = held
	h.mu.Unlock()
	for id, st := range held {
		f, ok := h.cfg.State.Fault(id)
		switch {
		case !ok || f.GetAgentId() != s.agentID || state.Ended(f.GetState()):
			h.sendRevert(s, id, reasonUnknownOnCtrl)
		case f.GetState() == stPending:
			// The apply result was lost (e.g. in a reconnect); the agent
			// says it holds the fault, which is what ACTIVE means.
			h.update(ctx, s.actor, id, stActive, "", st)
		case f.GetState() == stActive && st.GetState() == stReverting:
			// The agent's own revert (deadline, lease, halt) failed and
			// it is retrying (agent/inject/retry.go): the fault is still
			// on the host. Recorded once, so that every read shows it is
			// not clean; the agent's REVERTED report ends it.
			h.update(ctx, s.actor, id, stReverting, st.GetReason(), st)
		}
	}
	return held
}

// recordEnded records a fault the agent reports as ended, unless the
// state already says it ended.
func (h *Hub) recordEnded(ctx context.Context, s *session, st *turbulencev1.FaultStatus) {
	f, ok := h.cfg.State.Fault(st.GetFaultId())
	if !ok || f.GetAgentId() != s.agentID || state.Ended(f.GetState()) {
		return
	}
	reason := st.GetReason()
	if reason == "" {
		reason = reasonRevertedAgent
	}
	h.update(ctx, s.actor, f.GetId(), stReverted, reason, st)
}

// onResult records the answer to an ApplyFault or a RevertFault.
func (h *Hub) onResult(ctx context.Context, s *session, r *turbulencev1.CommandResult) {
	h.mu.Lock()
	cmd, known := s.commands[r.GetCommandId()]
	delete(s.commands, r.GetCommandId())
	h.mu.Unlock()
	faultID := r.GetFaultId()
	if known && faultID == "" {
		faultID = cmd.faultID
	}
	kind := cmd.kind
	if !known {
		// An answer to a command sent on an earlier session; the status
		// says which one it was.
		kind = commandApply
		if state.Ended(r.GetStatus().GetState()) {
			kind = commandRevert
		}
	}
	f, ok := h.cfg.State.Fault(faultID)
	if !ok || f.GetAgentId() != s.agentID {
		h.logger.Warn("result for a fault this agent does not own", "agent_id", s.agentID, "fault_id", faultID)
		return
	}
	switch {
	case kind == commandApply && r.GetOk():
		// Applied; the status may already say it ended or is being taken
		// back (a deadline or halt during the apply, a failed revert that
		// the agent retries): record what the agent reports.
		to, reason := stActive, ""
		switch st := r.GetStatus(); {
		case state.Ended(st.GetState()):
			to, reason = stReverted, st.GetReason()
		case st.GetState() == stReverting:
			to, reason = stReverting, st.GetReason()
		}
		h.update(ctx, s.actor, faultID, to, reason, r.GetStatus())
	case kind == commandApply && f.GetState() == stReverting:
		// Refused while a revert was already asked for: nothing was
		// applied, so it is reverted rather than failed.
		h.update(ctx, s.actor, faultID, stReverted, "not applied: "+r.GetError(), r.GetStatus())
	case kind == commandApply:
		h.update(ctx, s.actor, faultID, stFailed, r.GetError(), r.GetStatus())
	case r.GetOk():
		// Keep the reason recorded when the revert was asked for.
		h.update(ctx, s.actor, faultID, stReverted, "", r.GetStatus())
		h.mu.Lock()
		delete(h.soft(s.agentID).held, faultID)
		h.mu.Unlock()
	default:
		// The fault stays REVERTING; its deadline still bounds it on the
		// agent (invariant 1).
		h.logger.Error("agent could not revert a fault", "agent_id", s.agentID, "fault_id", faultID, "error", r.GetError())
	}
}

// update proposes an UpdateFault through raft. Rejections that only mean
// "this report is late" (an ended fault, a transition already overtaken)
// are expected in a distributed system and logged at debug level.
func (h *Hub) update(ctx context.Context, actor, faultID string, to turbulencev1.FaultState, reason string, st *turbulencev1.FaultStatus) {
	ctx, cancel := context.WithTimeout(ctx, raftWriteTimeout)
	defer cancel()
	_, err := h.cfg.Raft.Apply(ctx, &raftv1.LogEntry{
		Actor: actor,
		Cmd: &raftv1.LogEntry_UpdateFault{UpdateFault: &raftv1.UpdateFault{
			FaultId: faultID, State: to, Reason: reason, Status: st,
		}},
	})
	switch {
	case err == nil:
	case errors.Is(err, state.ErrInvalidTransition), errors.Is(err, state.ErrNotFound):
		h.logger.Debug("fault update overtaken", "fault_id", faultID, "to", to, "error", err)
	default:
		h.logger.Warn("cannot record fault update", "fault_id", faultID, "to", to, "error", err)
	}
}
