package controlapi

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/turbulence-sre/turbulence/controller/hostseries"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// GetAgentMetrics returns the host metrics the leader keeps for one
// registered agent (controller/hostseries), oldest first. The series is
// the leader's soft state: the controller routes this call to the
// leader (controller/forward, LeaderReads), so a follower never answers
// it from its own, empty, store. An agent that is registered but has
// sent no sample yet, or none since the since asked, gets an empty
// series, not an error.
func (s *Server) GetAgentMetrics(ctx context.Context, req *turbulencev1.GetAgentMetricsRequest) (*turbulencev1.GetAgentMetricsResponse, error) {
	if _, err := authorize(ctx, permRead); err != nil {
		return nil, toStatus(err)
	}
	id := req.GetAgentId()
	if id == "" {
		return nil, invalidField("agent_id", "is required")
	}
	var since time.Time
	if req.GetSince() != nil {
		if err := req.GetSince().CheckValid(); err != nil {
			return nil, invalidField("since", err.Error())
		}
		since = req.GetSince().AsTime()
	}
	if _, ok := s.cfg.State.Agent(id); !ok {
		return nil, toStatus(errorf(ErrNotFound, "agent_id: agent %q is not registered", id))
	}
	store := s.cfg.Hub.HostMetrics()
	var samples []hostseries.Sample
	if req.GetLatestOnly() {
		if l, ok := store.LatestSample(id); ok && !l.Time.Before(since) {
			samples = []hostseries.Sample{l}
		}
	} else {
		samples = store.Series(id, since)
	}
	resp := &turbulencev1.GetAgentMetricsResponse{
		AgentId:  id,
		Samples:  make([]*turbulencev1.HostMetricsSample, len(samples)),
		Window:   durationpb.New(store.Window()),
		Capacity: uint32(store.Capacity()),
	}
	for i, smp := range samples {
		resp.Samples[i] = smp.Proto()
	}
	return resp, nil
}
