package controlapi

import (
	"context"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/turbulence-sre/turbulence/internal/limits"
	"github.com/turbulence-sre/turbulence/internal/selector"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// ListAgents returns a page of the registered agents, by ID: those the
// selector matches and, when ids is set, only those listed. The filter
// applies before paging, so a page holds only matching agents and the
// page token stays a plain agent ID. A selector that does not parse is
// refused with InvalidArgument naming the field, and nothing is read.
func (s *Server) ListAgents(ctx context.Context, req *turbulencev1.ListAgentsRequest) (*turbulencev1.ListAgentsResponse, error) {
	if _, err := authorize(ctx, permRead); err != nil {
		return nil, toStatus(err)
	}
	n, err := PageSize("page_size", req.GetPageSize(), limits.DefaultPageAgents, limits.MaxPageAgents)
	if err != nil {
		return nil, err
	}
	after, err := DecodeToken(tokenAgents, req.GetPageToken())
	if err != nil {
		return nil, err
	}
	keep, err := agentFilter(req)
	if err != nil {
		return nil, err
	}
	agents, more := s.cfg.State.AgentsPage(after, n, keep)
	for _, a := range agents {
		s.overlayAgent(a)
	}
	resp := &turbulencev1.ListAgentsResponse{Agents: agents}
	if more {
		resp.NextPageToken = EncodeToken(tokenAgents, agents[len(agents)-1].GetId())
	}
	return resp, nil
}

// agentFilter turns a request's selector and explicit IDs into the state's
// filter; nil when the request asks for every agent.
func agentFilter(req *turbulencev1.ListAgentsRequest) (func(*turbulencev1.Agent) bool, error) {
	sel, err := selector.Parse(req.GetSelector())
	if err != nil {
		return nil, invalidField("selector", err.Error())
	}
	var ids map[string]bool
	if len(req.GetIds()) > 0 {
		ids = make(map[string]bool, len(req.GetIds()))
		for _, id := range req.GetIds() {
			ids[id] = true
		}
	}
	if sel.Empty() && ids == nil {
		return nil, nil
	}
	return func(a *turbulencev1.Agent) bool {
		if ids != nil && !ids[a.GetId()] {
			return false
		}
		return sel.Matches(a.GetLabels())
	}, nil
}

// GetAgent returns one agent.
func (s *Server) GetAgent(ctx context.Context, req *turbulencev1.GetAgentRequest) (*turbulencev1.Agent, error) {
	if _, err := authorize(ctx, permRead); err != nil {
		return nil, toStatus(err)
	}
	a, ok := s.cfg.State.Agent(req.GetId())
	if !ok {
		return nil, toStatus(errorf(ErrNotFound, "id: agent %q is not registered", req.GetId()))
	}
	s.overlayAgent(a)
	return a, nil
}

// overlayAgent fills the soft liveness fields from the leader's sessions.
func (s *Server) overlayAgent(a *turbulencev1.Agent) {
	lv, ok := s.cfg.Hub.Liveness(a.GetId())
	if !ok {
		return
	}
	a.Connected = lv.Connected
	a.LocallyHalted = lv.LocallyHalted
	if !lv.LastSeen.IsZero() {
		a.LastSeen = timestamppb.New(lv.LastSeen)
	}
}
