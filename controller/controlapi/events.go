package controlapi

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/turbulence-sre/turbulence/controller/state"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// defaultEventLimit caps ListEvents when the request sets no limit.
const defaultEventLimit = 1000

// ListEvents returns events after a sequence number, oldest first.
func (s *Server) ListEvents(ctx context.Context, req *turbulencev1.ListEventsRequest) (*turbulencev1.ListEventsResponse, error) {
	if _, err := authorize(ctx, permRead); err != nil {
		return nil, toStatus(err)
	}
	limit := int(req.GetLimit())
	if limit <= 0 || limit > state.MaxEvents {
		limit = defaultEventLimit
	}
	return &turbulencev1.ListEventsResponse{Events: s.cfg.State.Events(req.GetAfterSequence(), limit)}, nil
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
