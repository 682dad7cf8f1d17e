package agentapi

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/turbulence-sre/turbulence/controller/state"
	raftv1 "github.com/turbulence-sre/turbulence/proto/turbulence/raft/v1"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Reasons recorded by the controller (docs/protocol.md).
const (
	ReasonDeadline = "deadline"
	// ReasonLeaseExpired: the agent went silent for longer than its lease.
	// Its lease has most likely taken the fault back, but only its report
	// says so (invariant 8): the fault is UNCONFIRMED, not REVERTED.
	ReasonLeaseExpired = "lease expired: agent unreachable; outcome unknown until it reports"
	// ReasonDeadlineUnreachable: the deadline passed while the agent was
	// away; UNCONFIRMED for the same reason.
	ReasonDeadlineUnreachable = "deadline passed while the agent was unreachable; outcome unknown until it reports"
	// ReasonAwaitingReport: the agent came back without the fault; it is
	// asked what became of it.
	ReasonAwaitingReport = "agent reconnected without it; waiting for its report of how it ended"
	// ReasonNoRecord: the agent came back and has neither the fault nor a
	// record of its end (a lost state directory, another host under the
	// same name). Nobody knows what became of it.
	ReasonNoRecord = "outcome unknown: the agent has no record of it"
	// ReasonHeldWhileUnconfirmed: an agent still holds a fault the
	// controller had lost track of; it is taken back.
	ReasonHeldWhileUnconfirmed = "agent still held it after the controller lost track of it"
	// ReasonGoneWithoutRecord follows the revert's reason when, asked to
	// revert a fault it had reported on, the agent answered that it holds
	// it no more and keeps no record of how it ended (a restart lost the
	// record). The fault is closed, since nothing of it is left on the
	// agent, but the reason must not say the revert ended it: nobody
	// knows what did (invariant 8).
	ReasonGoneWithoutRecord = "the agent no longer held it and has no record of how it ended"
	reasonRevertedAgent     = "reverted by agent"
	reasonUnknownOnCtrl     = "the controller does not hold this fault as live"
)

const (
	stPending     = turbulencev1.FaultState_FAULT_STATE_PENDING
	stActive      = turbulencev1.FaultState_FAULT_STATE_ACTIVE
	stReverting   = turbulencev1.FaultState_FAULT_STATE_REVERTING
	stReverted    = turbulencev1.FaultState_FAULT_STATE_REVERTED
	stFailed      = turbulencev1.FaultState_FAULT_STATE_FAILED
	stUnconfirmed = turbulencev1.FaultState_FAULT_STATE_UNCONFIRMED
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
//
// A live fault the agent does not hold is not ended here on a guess: the
// Hello lists only held faults, and ended states are final, so a guess
// ("agent no longer holds it", the reconnect time) could never be
// corrected by what the agent knows. The agent is asked instead, with a
// RevertFault (a no-op for a fault it does not hold) whose answer is its
// record of the fault's end — reason and ended_at — or says it has none
// (onQueryAnswer). Its first heartbeat, which lists every end not yet
// reported, may tell the same first; either is recorded as the agent
// says (invariant 8). Until then an ACTIVE fault is UNCONFIRMED.
func (h *Hub) reconcileHello(ctx context.Context, s *session, hello *turbulencev1.Hello) {
	held := h.recordStatuses(ctx, s, hello.GetFaults())
	now := time.Now()
	for _, f := range h.cfg.State.Faults(state.FaultFilter{AgentID: s.agentID, ActiveOnly: true}) {
		_, isHeld := held[f.GetId()]
		passed := !f.GetDeadline().AsTime().After(now)
		switch {
		case isHeld && f.GetState() == stReverting:
			h.sendRevert(s, f.GetId(), f.GetReason())
		case isHeld:
			// Handled by recordStatuses.
		case f.GetState() == stPending && !passed:
			h.sendApply(s, f, time.Time{})
		case f.GetState() == stPending:
			// Never confirmed applied, and the agent refuses a fault
			// whose deadline has passed (invariant 1).
			h.update(ctx, s.actor, f.GetId(), stReverted, ReasonDeadline, nil)
		case f.GetState() == stActive:
			h.updateUnconfirmed(ctx, s.actor, f.GetId(), ReasonAwaitingReport, nil, now)
			h.sendQuery(s, f.GetId(), ReasonAwaitingReport)
		case f.GetState() == stReverting:
			h.sendQuery(s, f.GetId(), f.GetReason())
		default: // UNCONFIRMED
			h.sendQuery(s, f.GetId(), ReasonAwaitingReport)
		}
	}
}

// onQueryAnswer records the agent's answer to the RevertFault that asked,
// at its Hello, what became of a fault it did not hold: its record of the
// end (an ended status always carries ended_at) is recorded as the
// agent's word; a status without ended_at is the agent's "not held", and
// with nothing held and nothing recorded, the fault's outcome is unknown.
func (h *Hub) onQueryAnswer(ctx context.Context, s *session, f *turbulencev1.Fault, r *turbulencev1.CommandResult) {
	st := r.GetStatus()
	switch {
	case !r.GetOk() || !state.Ended(st.GetState()):
		// It held the fault after all and could not take it back at
		// once: its heartbeats report it REVERTING (recordStatuses).
	case st.GetEndedAt() != nil:
		h.recordEnded(ctx, s, st)
	default:
		h.updateUnconfirmed(ctx, s.actor, f.GetId(), ReasonNoRecord, nil, time.Time{})
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
		s.endAs(CauseNotLeader, status.Error(codes.Unavailable, errNotLeader))
		return
	}
	// Renew first: the lease is the safety mechanism (invariant 2) and
	// must not wait behind the raft writes below, nor behind commands
	// queued for the agent (outbox.go).
	h.renewLease(s)
	now := time.Now()
	if m := hb.GetHostMetrics(); m != nil {
		var sent time.Time
		if hb.GetSentAt() != nil {
			sent = hb.GetSentAt().AsTime()
		}
		h.cfg.HostSeries.Record(s.agentID, m, sent, now)
	}
	h.mu.Lock()
	a := h.soft(s.agentID)
	a.LastSeen = now
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
	a := h.soft(s.agentID)
	a.held = held
	for id, st := range held {
		a.last[id] = st
	}
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
		case f.GetState() == stUnconfirmed:
			// The controller lost track of it, yet the agent holds it
			// (its lease should have taken it back): take it back.
			h.update(ctx, s.actor, id, stReverting, ReasonHeldWhileUnconfirmed, st)
			h.sendRevert(s, id, ReasonHeldWhileUnconfirmed)
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
	// Invariant 8: the agent's reason and its ended_at are recorded as
	// they are (the state takes ended_at from the status); the effect it
	// last measured is kept when the end report carries none.
	h.update(ctx, s.actor, f.GetId(), stReverted, reason, withLastEffect(st, h.lastStatus(f)))
	h.forgetLast(s.agentID, f.GetId())
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
	if kind == commandQuery || kind == commandRevert && f.GetState() == stUnconfirmed {
		// What the agent knows of a fault the controller lost track of:
		// its record of the end, or none.
		h.onQueryAnswer(ctx, s, f, r)
		return
	}
	if known && cmd.kind == commandApply && !cmd.start.IsZero() {
		h.metrics.applied(cmd.start, r.GetOk())
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
	case r.GetOk() && notHeld(r.GetStatus()) && h.lastStatus(f) != nil:
		// It reported on the fault once, and now neither holds it nor
		// knows how it ended: the revert did not end it, and the
		// reason must not say it did.
		reason := ReasonGoneWithoutRecord
		if f.GetReason() != "" {
			reason = f.GetReason() + "; " + reason
		}
		h.update(ctx, s.actor, faultID, stReverted, reason, withLastEffect(r.GetStatus(), h.lastStatus(f)))
		h.mu.Lock()
		delete(h.soft(s.agentID).held, faultID)
		h.mu.Unlock()
		h.forgetLast(s.agentID, faultID)
	case r.GetOk():
		// Keep the reason recorded when the revert was asked for.
		h.update(ctx, s.actor, faultID, stReverted, "", withLastEffect(r.GetStatus(), h.lastStatus(f)))
		h.mu.Lock()
		delete(h.soft(s.agentID).held, faultID)
		h.mu.Unlock()
		h.forgetLast(s.agentID, faultID)
	default:
		// The fault stays REVERTING; its deadline still bounds it on the
		// agent (invariant 1).
		h.logger.Error("agent could not revert a fault", "agent_id", s.agentID, "fault_id", faultID, "error", r.GetError())
	}
}

// notHeld reports whether an agent's answer to a revert says it does not
// hold the fault and has no record of its end: an ended state without
// ended_at (an end the agent saw always carries when it was).
func notHeld(st *turbulencev1.FaultStatus) bool {
	return state.Ended(st.GetState()) && st.GetEndedAt() == nil
}

// updateUnconfirmed records a fault as UNCONFIRMED since the given time
// (zero keeps the time already recorded, or the entry's), with the
// agent's last status when st is set.
func (h *Hub) updateUnconfirmed(ctx context.Context, actor, faultID, reason string, st *turbulencev1.FaultStatus, since time.Time) {
	var ts *timestamppb.Timestamp
	if !since.IsZero() {
		ts = timestamppb.New(since)
	}
	h.propose(ctx, actor, &raftv1.UpdateFault{FaultId: faultID, State: stUnconfirmed, Reason: reason, Status: st, UnconfirmedSince: ts})
}

// update proposes an UpdateFault through raft. Rejections that only mean
// "this report is late" (an ended fault, a transition already overtaken)
// are expected in a distributed system and logged at debug level.
func (h *Hub) update(ctx context.Context, actor, faultID string, to turbulencev1.FaultState, reason string, st *turbulencev1.FaultStatus) {
	h.propose(ctx, actor, &raftv1.UpdateFault{FaultId: faultID, State: to, Reason: reason, Status: st})
}

func (h *Hub) propose(ctx context.Context, actor string, u *raftv1.UpdateFault) {
	ctx, cancel := context.WithTimeout(ctx, raftWriteTimeout)
	defer cancel()
	// The state before, to count what this entry changed: every move of a
	// fault to an end or to UNCONFIRMED is proposed here, by the leader.
	prev, known := h.cfg.State.Fault(u.GetFaultId())
	resp, err := h.cfg.Raft.Apply(ctx, &raftv1.LogEntry{
		Actor: actor,
		Cmd:   &raftv1.LogEntry_UpdateFault{UpdateFault: u},
	})
	switch {
	case err == nil:
		if now, ok := resp.(*turbulencev1.Fault); ok && known {
			h.metrics.transition(prev, now)
		}
	case errors.Is(err, state.ErrInvalidTransition), errors.Is(err, state.ErrNotFound):
		h.logger.Debug("fault update overtaken", "fault_id", u.GetFaultId(), "to", u.GetState(), "error", err)
	default:
		h.logger.Warn("cannot record fault update", "fault_id", u.GetFaultId(), "to", u.GetState(), "error", err)
	}
}
