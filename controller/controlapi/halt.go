package controlapi

import (
	"context"
	"fmt"

	raftv1 "github.com/turbulence-sre/turbulence/proto/turbulence/raft/v1"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Halt pulls the fleet's kill switch (invariant 5): the flag is raised in
// raft, which moves every pending and active fault to REVERTING in the
// same entry, and then every connected agent is told to revert all.
func (s *Server) Halt(ctx context.Context, req *turbulencev1.HaltRequest) (*turbulencev1.HaltStatus, error) {
	caller, err := authorize(ctx, permHalt)
	if err != nil {
		return nil, toStatus(err)
	}
	// A halt that changes nothing appends nothing: halt is exempt from
	// rate limits (any viewer may pull the switch), so a flood of halts on
	// a halted fleet must not grow the log. The agents are told again all
	// the same; that costs no raft write and mends an agent that missed
	// the first broadcast. Writes run on the leader (controller/forward),
	// whose state holds every applied entry.
	reason := req.GetReason()
	if reason == "" {
		reason = "fleet halted by " + caller.String()
	}
	var h *turbulencev1.HaltStatus
	if cur := s.cfg.State.Halt(); cur.GetHalted() {
		h = cur
	} else {
		// The brake first, the record second: the agents connected
		// here stop their faults while the flag is still on its way
		// through raft, whose commit a loaded cluster may take a second
		// over (docs/benchmarks.md). Halting early is always safe; if
		// the write then fails the caller is told and may call again.
		s.cfg.Hub.BroadcastHalt(reason)
		if h, err = s.setHalt(ctx, req.GetRequestId(), caller.String(), true, req.GetReason()); err != nil {
			return nil, toStatus(err)
		}
	}
	// Again once the flag is recorded: an agent that registered in
	// between was welcomed without it.
	s.cfg.Hub.BroadcastHalt(reason)
	s.logger.Warn("fleet halted", "by", caller.String(), "reason", req.GetReason())
	return h, nil
}

// Resume lowers the halt flag and tells connected agents.
func (s *Server) Resume(ctx context.Context, req *turbulencev1.ResumeRequest) (*turbulencev1.HaltStatus, error) {
	caller, err := authorize(ctx, permWrite)
	if err != nil {
		return nil, toStatus(err)
	}
	h, err := s.setHalt(ctx, req.GetRequestId(), caller.String(), false, "")
	if err != nil {
		return nil, toStatus(err)
	}
	s.cfg.Hub.BroadcastResume()
	s.logger.Info("fleet resumed", "by", caller.String())
	return h, nil
}

func (s *Server) setHalt(ctx context.Context, requestID, actor string, halted bool, reason string) (*turbulencev1.HaltStatus, error) {
	resp, err := s.propose(ctx, &raftv1.LogEntry{
		RequestId: requestID,
		Actor:     actor,
		Cmd:       &raftv1.LogEntry_SetHalt{SetHalt: &raftv1.SetHalt{Halted: halted, Reason: reason}},
	})
	if err != nil {
		return nil, err
	}
	h, ok := resp.(*turbulencev1.HaltStatus)
	if !ok {
		return nil, fmt.Errorf("set halt: unexpected raft response %T", resp)
	}
	return h, nil
}

// GetHaltStatus returns the fleet halt flag.
func (s *Server) GetHaltStatus(ctx context.Context, _ *turbulencev1.GetHaltStatusRequest) (*turbulencev1.HaltStatus, error) {
	if _, err := authorize(ctx, permRead); err != nil {
		return nil, toStatus(err)
	}
	return s.cfg.State.Halt(), nil
}
