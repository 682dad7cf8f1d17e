package session

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/turbulence-sre/turbulence/agent/inject"
	"github.com/turbulence-sre/turbulence/internal/limits"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// receive reads controller messages until the stream ends.
//
// A LeaseRenewal that sets heartbeat_interval re-paces the heartbeats:
// the new interval goes to the sender on pace (latest wins).
func (s *Session) receive(ctx context.Context, st stream, cmds chan<- *turbulencev1.ControllerMessage, pace chan time.Duration) error {
	for {
		msg, err := st.Recv()
		if err != nil {
			return fmt.Errorf("receive: %w", err)
		}
		// Invariant 2: any message from the leader renews the lease; a
		// Redirect is a follower's and renews nothing.
		if _, redirect := msg.GetMsg().(*turbulencev1.ControllerMessage_Redirect); !redirect {
			s.cfg.Lease.Renew(0)
		}
		switch m := msg.GetMsg().(type) {
		case *turbulencev1.ControllerMessage_Lease:
			if d := m.Lease.GetLeaseTtl(); d.IsValid() && d.AsDuration() > 0 {
				s.cfg.Lease.Renew(d.AsDuration())
			}
			if d := m.Lease.GetHeartbeatInterval(); d.IsValid() && d.AsDuration() > 0 {
				repace(pace, d.AsDuration())
			}
		case *turbulencev1.ControllerMessage_Welcome:
			s.welcome(m.Welcome) // not expected mid-session; honour it anyway
		case *turbulencev1.ControllerMessage_Redirect:
			return &redirectError{leader: m.Redirect.GetLeaderAddress()}
		case *turbulencev1.ControllerMessage_Halt:
			// Invariant 5: here, not in the handler's queue, so the halt
			// overtakes queued applies; an apply already running is
			// reverted by Halt when it returns.
			s.log.Warn("fleet halt: reverting every fault", "reason", m.Halt.GetReason())
			s.cfg.Manager.Halt()
		case *turbulencev1.ControllerMessage_Resume:
			s.log.Info("fleet resumed")
			s.cfg.Manager.Resume()
		case *turbulencev1.ControllerMessage_Apply, *turbulencev1.ControllerMessage_Revert:
			select {
			case cmds <- msg:
			case <-ctx.Done():
				return ctx.Err()
			}
		default:
			s.log.Warn("unknown controller message ignored", "type", fmt.Sprintf("%T", m))
		}
	}
}

// handle carries out commands in order and queues their results.
func (s *Session) handle(ctx context.Context, cmds <-chan *turbulencev1.ControllerMessage, out chan<- *turbulencev1.AgentMessage) {
	for {
		var msg *turbulencev1.ControllerMessage
		select {
		case msg = <-cmds:
		case <-ctx.Done():
			return
		}
		var res *turbulencev1.CommandResult
		switch m := msg.GetMsg().(type) {
		case *turbulencev1.ControllerMessage_Apply:
			res = s.apply(ctx, m.Apply)
		case *turbulencev1.ControllerMessage_Revert:
			res = s.revert(ctx, m.Revert)
		}
		select {
		case out <- &turbulencev1.AgentMessage{Msg: &turbulencev1.AgentMessage_Result{Result: res}}:
		case <-ctx.Done():
			return
		}
	}
}

func (s *Session) apply(ctx context.Context, a *turbulencev1.ApplyFault) *turbulencev1.CommandResult {
	f := a.GetFault()
	res := &turbulencev1.CommandResult{CommandId: a.GetCommandId(), FaultId: f.GetId()}
	st, err := s.cfg.Manager.Apply(ctx, f)
	if err != nil {
		s.log.Warn("fault refused", "fault_id", f.GetId(), "command_id", a.GetCommandId(), "err", err)
		res.Error = err.Error()
		return res
	}
	res.Ok, res.Status = true, st
	return res
}

func (s *Session) revert(ctx context.Context, r *turbulencev1.RevertFault) *turbulencev1.CommandResult {
	res := &turbulencev1.CommandResult{CommandId: r.GetCommandId(), FaultId: r.GetFaultId()}
	// The reported reason is the stable "revert requested"; who asked is
	// recorded by the controller (protocol §7).
	st, err := s.cfg.Manager.Revert(ctx, r.GetFaultId(), inject.ReasonRevertRequested)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	res.Ok, res.Status = true, st
	return res
}

// repace hands the sender a new heartbeat interval, replacing one it has
// not taken yet.
func repace(pace chan time.Duration, d time.Duration) {
	for {
		select {
		case pace <- d:
			return
		default:
		}
		select {
		case <-pace:
		default:
		}
	}
}

// heartbeatInterval is the interval the agent uses when the controller
// asks for d: at least minHeartbeatInterval (a controller must not make
// it flood), and at most a third of the lease TTL, so that a lease is
// renewed by at least three heartbeats' answers whatever a controller
// says (invariant 2: a pacing mistake must cost heartbeats, never a
// lease).
func (s *Session) heartbeatInterval(d time.Duration) time.Duration {
	d = max(d, minHeartbeatInterval)
	if ceiling := s.cfg.Lease.TTL() / 3; ceiling >= minHeartbeatInterval && d > ceiling {
		d = ceiling
	}
	return d
}

// send is the only goroutine that writes to the stream. It returns the
// final flush request, if that is what ended it; the caller answers it.
//
// Heartbeats go out every interval, re-paced by what arrives on pace.
func (s *Session) send(ctx context.Context, st stream, out <-chan *turbulencev1.AgentMessage, interval time.Duration, pace <-chan time.Duration) (*flushReq, error) {
	// A first heartbeat at once reports faults that ended while we were
	// disconnected.
	if err := s.heartbeat(st); err != nil {
		return nil, err
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, nil
		case m := <-out:
			limits.Fit(m)
			if err := st.Send(m); err != nil {
				return nil, fmt.Errorf("send result: %w", err)
			}
		case <-tick.C:
			if err := s.heartbeat(st); err != nil {
				return nil, err
			}
		case d := <-pace:
			if d = s.heartbeatInterval(d); d != interval {
				s.log.Info("heartbeat interval changed by the controller", "from", interval, "to", d)
				interval = d
				tick.Reset(d)
				if s.cfg.HostMetrics != nil {
					s.cfg.HostMetrics.SetInterval(d)
				}
			}
		case <-s.cfg.Manager.Ended():
			// A fault ended: the fleet view learns it now, not a beat
			// later.
			if err := s.heartbeat(st); err != nil {
				return nil, err
			}
		case req := <-s.flush:
			err := s.heartbeat(st)
			if req.final {
				if err == nil {
					err = st.CloseSend()
				}
				return &req, err
			}
			req.done <- err
			if err != nil {
				return nil, err
			}
		}
	}
}

func (s *Session) heartbeat(st stream) error {
	held, ended, mark := s.cfg.Manager.Report()
	// Invariant 5: every heartbeat says whether the host's operator halted
	// the agent, so the fleet view shows it while it lasts.
	hb := &turbulencev1.Heartbeat{
		Faults:        append(held, ended...),
		LocallyHalted: s.cfg.Manager.LocallyHalted(),
		SentAt:        timestamppb.Now(),
	}
	if s.cfg.HostMetrics != nil {
		hb.HostMetrics = s.cfg.HostMetrics.Latest()
	}
	msg := &turbulencev1.AgentMessage{Msg: &turbulencev1.AgentMessage_Heartbeat{Heartbeat: hb}}
	// Reasons are composed from errors the agent does not control: cut
	// them to the controller's bounds rather than lose the session.
	limits.Fit(msg)
	if err := st.Send(msg); err != nil {
		return fmt.Errorf("send heartbeat: %w", err)
	}
	s.cfg.Manager.AckEnded(mark)
	return nil
}
