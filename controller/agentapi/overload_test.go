package agentapi

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/turbulence-sre/turbulence/controller/state"
	raftv1 "github.com/turbulence-sre/turbulence/proto/turbulence/raft/v1"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// stalledRaft leads, and accepts every entry except fault updates, which
// wait until their context gives up: a raft log far behind its writes, as
// a leader is when thousands of agents report at once on a busy machine.
type stalledRaft struct{}

func (stalledRaft) Apply(ctx context.Context, e *raftv1.LogEntry) (any, error) {
	if e.GetUpdateFault() != nil {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return nil, nil
}
func (stalledRaft) IsLeader() bool { return true }

// pipeStream is an agent's Connect stream inside the test: Recv returns
// what the test's agent sends, Send records when the agent would have
// received each message.
type pipeStream struct {
	ctx  context.Context
	in   chan *turbulencev1.AgentMessage
	mu   sync.Mutex
	got  []time.Time // when each controller message was sent
	kind []string
}

func (p *pipeStream) Recv() (*turbulencev1.AgentMessage, error) {
	select {
	case m := <-p.in:
		return m, nil
	case <-p.ctx.Done():
		// What a gRPC server stream's Recv returns once the stream's
		// context ends (the connection dropped): a status error, never
		// io.EOF, which means the agent half-closed.
		return nil, status.FromContextError(p.ctx.Err()).Err()
	}
}

func (p *pipeStream) Send(m *turbulencev1.ControllerMessage) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.got = append(p.got, time.Now())
	p.kind = append(p.kind, string(m.ProtoReflect().WhichOneof(m.ProtoReflect().Descriptor().Oneofs().ByName("msg")).Name()))
	return nil
}

// TestOverload_SlowRaftRevertsNothing: an agent whose stream is alive and
// beating keeps its lease, and is not judged away by the leader loop,
// while every raft write its reports cause takes longer than the lease
// TTL. A slow controller makes commands slow; it must never make an
// agent revert (invariant 2 is about agents that cannot hear the
// controller, docs/design.md).
func TestOverload_SlowRaftRevertsNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl, beat = 3 * time.Second, time.Second
		st := state.New()
		m := state.Meta{Time: time.Now()}
		if _, err := st.ApplyRegisterAgent(m, &turbulencev1.Agent{Id: "a1"}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.ApplyCreateFault(m, &turbulencev1.Fault{Id: "f1", AgentId: "a1",
			Spec:     &turbulencev1.FaultSpec{Duration: durationpb.New(time.Hour), Kind: &turbulencev1.FaultSpec_Cpu{Cpu: &turbulencev1.CPUSpec{LoadPercent: 5}}},
			Deadline: timestamppb.New(time.Now().Add(time.Hour))}); err != nil {
			t.Fatal(err)
		}
		h := New(Config{Raft: stalledRaft{}, State: st, HeartbeatInterval: beat, LeaseTTL: ttl})
		ctx, cancel := context.WithCancel(t.Context())
		stream := &pipeStream{ctx: ctx, in: make(chan *turbulencev1.AgentMessage)}
		leaderSince := time.Now()
		done := make(chan error, 1)
		go func() {
			done <- h.serve(ctx, "a1", "agent/a1", &turbulencev1.Hello{AgentId: "a1"}, stream, slog.New(slog.DiscardHandler))
		}()
		// The agent holds f1 and says so every beat; recording it ACTIVE
		// is a raft write that never completes in time. Each report is
		// sent as the agent's own send loop would, waiting while the
		// controller does not read.
		hb := &turbulencev1.AgentMessage{Msg: &turbulencev1.AgentMessage_Heartbeat{Heartbeat: &turbulencev1.Heartbeat{
			Faults: []*turbulencev1.FaultStatus{{FaultId: "f1", State: stActive}},
		}}}
		end := time.Now().Add(6 * ttl)
		for time.Now().Before(end) {
			select {
			case stream.in <- hb:
			case <-time.After(beat):
				// Not read: the stream's flow control holds the agent.
			}
			time.Sleep(beat)
			if lv, ok := h.Liveness("a1"); !ok || !lv.Connected {
				t.Errorf("at +%s: agent beating every interval shown disconnected", time.Since(leaderSince))
			}
			for _, e := range h.expired(leaderSince, time.Now()) {
				t.Errorf("at +%s: leader loop would record %s %q for an agent heard every beat", time.Since(leaderSince), e.faultID, e.reason)
			}
		}
		cancel()
		if err := <-done; err == nil {
			t.Error("session ended without an error when its stream was cancelled")
		}

		stream.mu.Lock()
		defer stream.mu.Unlock()
		// The agent renews its lease on every message from the leader
		// (agent/session); a gap longer than the TTL is a false revert.
		last := leaderSince
		for i, at := range stream.got {
			if gap := at.Sub(last); gap >= ttl {
				t.Errorf("agent heard nothing for %s before message %d (%s), lease TTL %s: its faults would be reverted", gap, i, stream.kind[i], ttl)
			}
			last = at
		}
		if gap := end.Sub(last); gap >= ttl {
			t.Errorf("agent heard nothing for the last %s of the run, lease TTL %s", gap, ttl)
		}
	})
}

// TestOutbox_RenewalOvertakesQueuedCommands: a lease renewal asked for
// while a burst of commands is queued (a group apply, a halt's reverts)
// is the next message sent, not the burst's last; but never before the
// Welcome, which must be the session's first message.
func TestOutbox_RenewalOvertakesQueuedCommands(t *testing.T) {
	// Repeated: without the priority, select picks the renewal first half
	// the time, so twenty runs would let that slip by once in a million.
	for range 20 {
		synctest.Test(t, renewalOvertakes)
	}
}

func renewalOvertakes(t *testing.T) {
	h := New(Config{Raft: leaderOnly{}, State: state.New()})
	ctx, cancel := context.WithCancelCause(t.Context())
	s := &session{agentID: "a1", ctx: ctx, cancel: cancel, commands: make(map[string]command)}
	s.enqueue(&turbulencev1.ControllerMessage{Msg: &turbulencev1.ControllerMessage_Welcome{Welcome: &turbulencev1.Welcome{}}})
	for range sendQueueSize - 1 {
		s.enqueue(&turbulencev1.ControllerMessage{Msg: &turbulencev1.ControllerMessage_Apply{Apply: &turbulencev1.ApplyFault{CommandId: "c"}}})
	}
	h.renewLease(s)
	stream := &pipeStream{ctx: ctx, in: make(chan *turbulencev1.AgentMessage)}
	s.box.attach(func(m *turbulencev1.ControllerMessage) bool { return h.send(s, stream, m) },
		func() *turbulencev1.ControllerMessage { return h.leaseRenewal(s) })
	synctest.Wait() // every queued message is sent, the sender ends
	cancel(nil)
	s.box.stop()
	stream.mu.Lock()
	defer stream.mu.Unlock()
	if len(stream.kind) != sendQueueSize+1 {
		t.Fatalf("sent %d messages, want %d", len(stream.kind), sendQueueSize+1)
	}
	if stream.kind[0] != "welcome" {
		t.Fatalf("first message sent = %s, want the Welcome queued first", stream.kind[0])
	}
	if stream.kind[1] != "lease" {
		t.Fatalf("message after the Welcome = %s, want the lease renewal ahead of %d queued commands", stream.kind[1], sendQueueSize-1)
	}
}
