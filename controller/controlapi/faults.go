package controlapi

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/turbulence-sre/turbulence/controller/state"
	"github.com/turbulence-sre/turbulence/internal/faultspec"
	"github.com/turbulence-sre/turbulence/internal/limits"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	raftv1 "github.com/turbulence-sre/turbulence/proto/turbulence/raft/v1"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// ApplyFault records a new fault for an agent and dispatches it.
func (s *Server) ApplyFault(ctx context.Context, req *turbulencev1.ApplyFaultRequest) (*turbulencev1.Fault, error) {
	id, err := authorize(ctx, permWrite)
	if err != nil {
		return nil, toStatus(err)
	}
	f, err := s.applyFault(ctx, id, req)
	if err != nil {
		s.logger.Info("fault refused", "agent_id", req.GetAgentId(), "by", id.String(), "error", err)
		return nil, toStatus(err)
	}
	return f, nil
}

func (s *Server) applyFault(ctx context.Context, caller tlsutil.Identity, req *turbulencev1.ApplyFaultRequest) (*turbulencev1.Fault, error) {
	// A retry of a request that was applied returns what it made, even if
	// the world changed since (halted, agent gone).
	if resultID, ok := s.cfg.State.AppliedResult(req.GetRequestId()); ok {
		if f, ok := s.cfg.State.Fault(resultID); ok {
			return s.overlayFault(f), nil
		}
	}
	// Invariant 6: every check below happens before anything is proposed.
	spec, err := s.validate(req)
	if err != nil {
		return nil, err
	}
	agent, ok := s.cfg.State.Agent(req.GetAgentId())
	if !ok {
		return nil, errorf(ErrNotFound, "agent_id: agent %q is not registered", req.GetAgentId())
	}
	if r := checkAgent(agent, spec); r != nil {
		return nil, r
	}
	// Invariant 5: no new fault while the fleet is halted.
	if h := s.cfg.State.Halt(); h.GetHalted() {
		return nil, haltedError(h)
	}

	now := time.Now()
	fault := &turbulencev1.Fault{
		Id:        newID("f-"),
		AgentId:   agent.GetId(),
		Spec:      spec,
		State:     turbulencev1.FaultState_FAULT_STATE_PENDING,
		CreatedAt: timestamppb.New(now),
		// Invariant 1: an absolute deadline, fixed before proposing.
		Deadline:  timestamppb.New(now.Add(spec.GetDuration().AsDuration())),
		CreatedBy: caller.String(),
	}
	created, err := proposeCreate[*turbulencev1.Fault](ctx, s, req.GetRequestId(), caller.String(), now, &raftv1.LogEntry{
		Cmd: &raftv1.LogEntry_CreateFault{CreateFault: &raftv1.CreateFault{Fault: fault}},
	})
	if err != nil {
		return nil, err
	}
	// Only a fault made by this call is dispatched; a request ID retried
	// concurrently returns the first one, which was dispatched already.
	if created.GetId() == fault.GetId() {
		s.cfg.Hub.DispatchApply(created)
		s.logger.Info("fault created", "fault_id", created.GetId(), "agent_id", created.GetAgentId(), "kind", faultspec.Kind(spec), "by", caller.String())
	}
	return s.overlayFault(created), nil
}

// validate fills the default duration and checks the request, returning
// every problem at once as a *faultspec.Error.
func (s *Server) validate(req *turbulencev1.ApplyFaultRequest) (*turbulencev1.FaultSpec, error) {
	var problems []faultspec.FieldError
	if req.GetAgentId() == "" {
		problems = append(problems, faultspec.FieldError{Field: "agent_id", Reason: "is required"})
	}
	spec, specProblems, err := s.checkSpec(req.GetSpec())
	if err != nil {
		return nil, err
	}
	problems = append(problems, specProblems...)
	if len(problems) > 0 {
		return nil, &faultspec.Error{Problems: problems}
	}
	return spec, nil
}

// checkSpec fills the default duration of a spec and validates it; the
// single apply and the group apply share it.
func (s *Server) checkSpec(in *turbulencev1.FaultSpec) (*turbulencev1.FaultSpec, []faultspec.FieldError, error) {
	var spec *turbulencev1.FaultSpec
	if in != nil {
		// Only a missing duration is filled; an explicit zero stays zero
		// and is refused by Validate.
		spec = faultspec.WithDefaultDuration(in, s.cfg.DefaultFaultDuration)
	}
	if err := faultspec.Validate(spec); err != nil {
		var specErr *faultspec.Error
		if !errors.As(err, &specErr) {
			return nil, nil, err
		}
		return spec, specErr.Problems, nil
	}
	return spec, nil, nil
}

func haltedError(h *turbulencev1.HaltStatus) error {
	reason := ""
	if h.GetReason() != "" {
		reason = fmt.Sprintf(" (%s)", h.GetReason())
	}
	return errorf(ErrHalted, "the fleet was halted by %s at %s%s: no new faults until `turbctl resume` lifts the halt",
		h.GetBy(), h.GetSince().AsTime().Format(time.RFC3339), reason)
}

// RevertFault asks for a fault to be taken back.
func (s *Server) RevertFault(ctx context.Context, req *turbulencev1.RevertFaultRequest) (*turbulencev1.Fault, error) {
	caller, err := authorize(ctx, permWrite)
	if err != nil {
		return nil, toStatus(err)
	}
	f, ok := s.cfg.State.Fault(req.GetId())
	if !ok {
		return nil, toStatus(errorf(ErrNotFound, "id: fault %q not found", req.GetId()))
	}
	if state.Ended(f.GetState()) {
		return s.overlayFault(f), nil
	}
	reason := "revert requested by " + caller.String()
	resp, err := s.propose(ctx, &raftv1.LogEntry{
		RequestId: req.GetRequestId(),
		Actor:     caller.String(),
		Cmd: &raftv1.LogEntry_UpdateFault{UpdateFault: &raftv1.UpdateFault{
			FaultId: f.GetId(), State: turbulencev1.FaultState_FAULT_STATE_REVERTING, Reason: reason,
		}},
	})
	if err != nil {
		return nil, toStatus(err)
	}
	updated, ok := resp.(*turbulencev1.Fault)
	if !ok {
		return nil, toStatus(fmt.Errorf("revert fault: unexpected raft response %T", resp))
	}
	if updated.GetState() == turbulencev1.FaultState_FAULT_STATE_REVERTING {
		s.cfg.Hub.DispatchRevert(updated, updated.GetReason())
	}
	s.logger.Info("fault revert requested", "fault_id", f.GetId(), "by", caller.String())
	return s.overlayFault(updated), nil
}

// GetFault returns one fault.
func (s *Server) GetFault(ctx context.Context, req *turbulencev1.GetFaultRequest) (*turbulencev1.Fault, error) {
	if _, err := authorize(ctx, permRead); err != nil {
		return nil, toStatus(err)
	}
	f, ok := s.cfg.State.Fault(req.GetId())
	if !ok {
		return nil, toStatus(errorf(ErrNotFound, "id: fault %q not found", req.GetId()))
	}
	return s.overlayFault(f), nil
}

// ListFaults returns a page of the faults that match, oldest first.
func (s *Server) ListFaults(ctx context.Context, req *turbulencev1.ListFaultsRequest) (*turbulencev1.ListFaultsResponse, error) {
	if _, err := authorize(ctx, permRead); err != nil {
		return nil, toStatus(err)
	}
	n, err := PageSize("page_size", req.GetPageSize(), limits.DefaultPageFaults, limits.MaxPageFaults)
	if err != nil {
		return nil, err
	}
	after, err := parseFaultToken(req.GetPageToken())
	if err != nil {
		return nil, err
	}
	since, until, err := timeRange(req.GetSince(), req.GetUntil())
	if err != nil {
		return nil, err
	}
	if k := req.GetKind(); k != "" && !slices.Contains(faultspec.AllKinds, k) {
		return nil, invalidField("kind", fmt.Sprintf("%q is not a fault kind (one of %s)", k, strings.Join(faultspec.AllKinds, ", ")))
	}
	if _, ok := turbulencev1.FaultState_name[int32(req.GetState())]; !ok {
		return nil, invalidField("state", fmt.Sprintf("%d is not a fault state", req.GetState()))
	}
	faults, more := s.cfg.State.FaultsPage(state.FaultFilter{
		AgentID: req.GetAgentId(), ActiveOnly: req.GetActiveOnly(), State: req.GetState(),
		Kind: req.GetKind(), Since: since, Until: until,
	}, after, n)
	resp := &turbulencev1.ListFaultsResponse{Faults: faults}
	if more {
		last := faults[len(faults)-1]
		resp.NextPageToken = faultToken(state.FaultCursor{CreatedAt: last.GetCreatedAt().AsTime(), ID: last.GetId()})
	}
	for i, f := range faults {
		faults[i] = s.overlayFault(f)
	}
	return resp, nil
}

// overlayFault puts the agent's latest soft status on a live fault.
func (s *Server) overlayFault(f *turbulencev1.Fault) *turbulencev1.Fault {
	if state.Ended(f.GetState()) {
		return f
	}
	if st, ok := s.cfg.Hub.HeldStatus(f.GetAgentId(), f.GetId()); ok {
		f.Status = st
	}
	return f
}
