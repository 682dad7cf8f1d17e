package controlapi

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/turbulence-sre/turbulence/controller/state"
	"github.com/turbulence-sre/turbulence/internal/limits"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// defaultEventLimit is the batch WatchEvents sends at a time.
const defaultEventLimit = limits.DefaultPageEvents

// ListEvents returns a page of the events that match, after a sequence
// number (after_sequence, or the page token's, whichever is later),
// oldest first.
func (s *Server) ListEvents(ctx context.Context, req *turbulencev1.ListEventsRequest) (*turbulencev1.ListEventsResponse, error) {
	if _, err := authorize(ctx, permRead); err != nil {
		return nil, toStatus(err)
	}
	field, asked := "page_size", req.GetPageSize()
	if asked == 0 {
		field, asked = "limit", req.GetLimit()
	}
	n, err := PageSize(field, asked, limits.DefaultPageEvents, limits.MaxPageEvents)
	if err != nil {
		return nil, err
	}
	after, err := parseSeqToken(tokenEvents, req.GetPageToken())
	if err != nil {
		return nil, err
	}
	after = max(after, req.GetAfterSequence())
	since, until, err := timeRange(req.GetSince(), req.GetUntil())
	if err != nil {
		return nil, err
	}
	evs, more := s.cfg.State.EventsPage(state.EventFilter{AgentID: req.GetAgentId(), Type: req.GetType(), Since: since, Until: until}, after, n)
	resp := &turbulencev1.ListEventsResponse{Events: evs}
	if more {
		resp.NextPageToken = seqToken(tokenEvents, evs[len(evs)-1].GetSequence())
	}
	return resp, nil
}

// WatchEvents sends the events after after_sequence and then follows the
// log until the caller goes away or the controller stops.
func (s *Server) WatchEvents(req *turbulencev1.WatchEventsRequest, stream grpc.ServerStreamingServer[turbulencev1.Event]) error {
	ctx := stream.Context()
	if _, err := authorize(ctx, permRead); err != nil {
		return toStatus(err)
	}
	after := req.GetAfterSequence()
	for {
		// Take the channel before reading so no change is missed between
		// the read and the wait.
		changed := s.cfg.State.Changed()
		for {
			evs := s.cfg.State.Events(after, defaultEventLimit)
			for _, ev := range evs {
				if err := stream.Send(ev); err != nil {
					return err
				}
				after = ev.GetSequence()
			}
			if len(evs) < defaultEventLimit {
				break
			}
		}
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-s.stopping:
			return status.Error(codes.Unavailable, "controller is shutting down")
		case <-changed:
		}
	}
}
