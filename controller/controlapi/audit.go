package controlapi

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/turbulence-sre/turbulence/controller/state"
	"github.com/turbulence-sre/turbulence/internal/faultspec"
	"github.com/turbulence-sre/turbulence/internal/limits"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	raftv1 "github.com/turbulence-sre/turbulence/proto/turbulence/raft/v1"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Bounds of ListAudit. The whole log (state.MaxAuditEntries records)
// would not fit in one gRPC message, so a page is capped (docs/limits.md).
const (
	// DefaultAuditLimit is the page size when the request gives none.
	DefaultAuditLimit = limits.DefaultPageAudit
	// MaxAuditLimit is the largest page a request may ask for.
	MaxAuditLimit = limits.MaxPageAudit
	// maxActorLen bounds the actor filter; identities are role/name.
	maxActorLen = limits.MaxActor
)

// Audit actions, as they appear in AuditEntry.action.
const (
	AuditFaultApply       = "fault.apply"
	AuditFaultRevert      = "fault.revert"
	AuditFaultUpdate      = "fault.update"
	AuditFleetHalt        = "fleet.halt"
	AuditFleetResume      = "fleet.resume"
	AuditAgentRegister    = "agent.register"
	AuditGroupApply       = "fault.group.apply"
	AuditGroupRevert      = "fault.group.revert"
	AuditExperimentStart  = "experiment.start"
	AuditExperimentUpdate = "experiment.update"
)

// withAudit returns the entry to propose for a ControlService call: a
// copy with a request ID (generated when the caller gave none, so every
// audit record can be traced) and, unless the caller set one already, an
// Audit describing the command. propose calls it for every write, so no
// mutating call can reach raft without its audit record, and the record
// travels in the same entry as the write (docs/users.md R1; docs/design.md
// "an audit log of every mutating call with the caller's identity").
func withAudit(e *raftv1.LogEntry) *raftv1.LogEntry {
	e = proto.CloneOf(e)
	if e.GetRequestId() == "" {
		e.RequestId = newID("r-")
	}
	if e.GetAudit() == nil {
		e.Audit = describe(e)
	}
	e.Audit.Summary = truncate(e.Audit.GetSummary(), MaxAuditSummary)
	return e
}

// MaxAuditSummary bounds one record's summary, which quotes free text
// (a halt reason): the summary is cut to it, the reason itself is kept in
// the halt status. The value is internal/limits'.
const MaxAuditSummary = limits.MaxAuditSummary

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
var truncate = limits.Truncate

// describe is the one-line summary of an entry's command.
func describe(e *raftv1.LogEntry) *raftv1.Audit {
	switch c := e.GetCmd().(type) {
	case *raftv1.LogEntry_CreateFault:
		f := c.CreateFault.GetFault()
		return &raftv1.Audit{Action: AuditFaultApply, Summary: fmt.Sprintf("apply %s fault %s to agent %s for %s",
			faultspec.Kind(f.GetSpec()), f.GetId(), f.GetAgentId(), f.GetSpec().GetDuration().AsDuration())}
	case *raftv1.LogEntry_UpdateFault:
		u := c.UpdateFault
		if u.GetState() == turbulencev1.FaultState_FAULT_STATE_REVERTING {
			return &raftv1.Audit{Action: AuditFaultRevert, Summary: "revert fault " + u.GetFaultId()}
		}
		return &raftv1.Audit{Action: AuditFaultUpdate, Summary: fmt.Sprintf("move fault %s to %s", u.GetFaultId(), u.GetState())}
	case *raftv1.LogEntry_SetHalt:
		if c.SetHalt.GetHalted() {
			s := "halt the fleet"
			if r := c.SetHalt.GetReason(); r != "" {
				s += ": " + r
			}
			return &raftv1.Audit{Action: AuditFleetHalt, Summary: s}
		}
		return &raftv1.Audit{Action: AuditFleetResume, Summary: "resume the fleet"}
	case *raftv1.LogEntry_CreateFaultGroup:
		g := c.CreateFaultGroup.GetGroup()
		return &raftv1.Audit{Action: AuditGroupApply, Summary: fmt.Sprintf("apply %s group %s to %d of %d eligible agents for %s (seed %d, selector %q)",
			faultspec.Kind(g.GetSpec()), g.GetId(), g.GetChosen(), g.GetEligible(), g.GetSpec().GetDuration().AsDuration(), g.GetSeed(), g.GetSelector())}
	case *raftv1.LogEntry_RevertFaultGroup:
		return &raftv1.Audit{Action: AuditGroupRevert, Summary: "revert group " + c.RevertFaultGroup.GetGroupId()}
	case *raftv1.LogEntry_CreateExperiment:
		x := c.CreateExperiment.GetExperiment()
		return &raftv1.Audit{Action: AuditExperimentStart, Summary: fmt.Sprintf("start experiment %s (%s, seed %d)", x.GetId(), x.GetName(), x.GetSeed())}
	case *raftv1.LogEntry_UpdateExperiment:
		u := c.UpdateExperiment
		if u.GetState() > turbulencev1.ExperimentState_EXPERIMENT_STATE_RUNNING {
			return &raftv1.Audit{Action: AuditExperimentUpdate, Summary: fmt.Sprintf("end experiment %s %s: %s", u.GetId(), u.GetState(), u.GetReason())}
		}
		return &raftv1.Audit{Action: AuditExperimentUpdate, Summary: "record progress of experiment " + u.GetId()}
	case *raftv1.LogEntry_RegisterAgent:
		return &raftv1.Audit{Action: AuditAgentRegister, Summary: "register agent " + c.RegisterAgent.GetAgent().GetId()}
	}
	// A command added later without a case here is still recorded.
	return &raftv1.Audit{Action: "unknown", Summary: fmt.Sprintf("%T", e.GetCmd())}
}

// ProposeAuditRecord records a mutating call whose effect is not an FSM
// command (raft membership changes: join, remove). Call it before making
// the change and refuse the change if it fails; the record then says
// what was asked, and the call's outcome is the caller's to log. This is
// as close to atomic as a change outside the FSM allows: no change is
// made without its record committed first.
func ProposeAuditRecord(ctx context.Context, p Proposer, caller tlsutil.Identity, requestID, action, summary string) error {
	if requestID == "" {
		requestID = newID("r-")
	}
	_, err := p.Apply(ctx, &raftv1.LogEntry{
		RequestId: requestID,
		Actor:     caller.String(),
		// The summary may quote request fields: bounded as in withAudit.
		Audit: &raftv1.Audit{Action: action, Summary: truncate(summary, MaxAuditSummary)},
		Cmd:   &raftv1.LogEntry_RecordAudit{RecordAudit: &raftv1.RecordAudit{}},
	})
	if err != nil {
		return fmt.Errorf("record audit entry for %s: %w", action, err)
	}
	return nil
}

// ListAudit returns the audit log, newest first. Reading it needs only
// the read permission: a viewer may see who did what.
func (s *Server) ListAudit(ctx context.Context, req *turbulencev1.ListAuditRequest) (*turbulencev1.ListAuditResponse, error) {
	if _, err := authorize(ctx, permRead); err != nil {
		return nil, toStatus(err)
	}
	f, err := auditFilter(req)
	if err != nil {
		return nil, err
	}
	before, err := parseSeqToken(tokenAudit, req.GetPageToken())
	if err != nil {
		return nil, err
	}
	entries, more := s.cfg.State.AuditPage(f, before)
	resp := &turbulencev1.ListAuditResponse{Entries: entries}
	if more {
		resp.NextPageToken = seqToken(tokenAudit, entries[len(entries)-1].GetSequence())
	}
	return resp, nil
}

// auditFilter checks a ListAudit request and returns its filter, or an
// InvalidArgument status with one field violation per problem
// (invariant 6: a clear error naming the field and the limit).
func auditFilter(req *turbulencev1.ListAuditRequest) (state.AuditFilter, error) {
	var problems []*errdetails.BadRequest_FieldViolation
	bad := func(field, format string, args ...any) {
		problems = append(problems, &errdetails.BadRequest_FieldViolation{Field: field, Description: fmt.Sprintf(format, args...)})
	}
	f := state.AuditFilter{Actor: req.GetActor(), Action: req.GetAction(), Limit: DefaultAuditLimit}
	field, n := "page_size", req.GetPageSize()
	if n == 0 {
		field, n = "limit", req.GetLimit()
	}
	if n > MaxAuditLimit {
		bad(field, "%d is above the maximum of %d", n, MaxAuditLimit)
	} else if n > 0 {
		f.Limit = int(n)
	}
	if len(f.Actor) > maxActorLen {
		bad("actor", "is %d bytes long, above the maximum of %d", len(f.Actor), maxActorLen)
	}
	if ts := req.GetSince(); ts != nil {
		if err := ts.CheckValid(); err != nil {
			bad("since", "%v", err)
		} else {
			f.Since = ts.AsTime()
		}
	}
	if ts := req.GetUntil(); ts != nil {
		if err := ts.CheckValid(); err != nil {
			bad("until", "%v", err)
		} else {
			f.Until = ts.AsTime()
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		bad("until", "must be after since")
	}
	if len(problems) == 0 {
		return f, nil
	}
	msgs := make([]string, len(problems))
	for i, p := range problems {
		msgs[i] = p.GetField() + ": " + p.GetDescription()
	}
	st := status.New(codes.InvalidArgument, "invalid audit query: "+strings.Join(msgs, "; "))
	if withDetails, err := st.WithDetails(&errdetails.BadRequest{FieldViolations: problems}); err == nil {
		st = withDetails
	}
	return state.AuditFilter{}, st.Err()
}
