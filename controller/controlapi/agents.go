package controlapi

import (
	"context"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/turbulence-sre/turbulence/internal/limits"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// ListAgents returns a page of the registered agents, by ID.
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
	agents, more := s.cfg.State.AgentsPage(after, n)
	for _, a := range agents {
		s.overlayAgent(a)
	}
	resp := &turbulencev1.ListAgentsResponse{Agents: agents}
	if more {
		resp.NextPageToken = EncodeToken(tokenAgents, agents[len(agents)-1].GetId())
	}
	return resp, nil
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
