package agentapi

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/turbulence-sre/turbulence/controller/state"
	raftv1 "github.com/turbulence-sre/turbulence/proto/turbulence/raft/v1"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// leaderOnly is a Proposer that leads and accepts every entry unapplied.
type leaderOnly struct{}

func (leaderOnly) Apply(context.Context, *raftv1.LogEntry) (any, error) { return nil, nil }
func (leaderOnly) IsLeader() bool                                       { return true }

// openSession registers a session of agent id on h, as Connect does.
func openSession(t *testing.T, h *Hub, id string) *session {
	t.Helper()
	ctx, cancel := context.WithCancelCause(t.Context())
	t.Cleanup(func() { cancel(nil) })
	s := &session{agentID: id, actor: "agent/" + id,
		ctx: ctx, cancel: cancel, commands: make(map[string]command)}
	if err := h.register(s, false); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestLiveness_SilentAgentIsDisconnected: an agent whose session stays
// open but which stops sending heartbeats (a half-open stream) is shown
// disconnected one heartbeat interval after its beat was due, not when
// gRPC keepalive gives up on the stream tens of seconds later.
func TestLiveness_SilentAgentIsDisconnected(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const beat = time.Second
		h := New(Config{Raft: leaderOnly{}, State: state.New(), HeartbeatInterval: beat})
		s := openSession(t, h, "a1")
		connected := func() bool {
			lv, ok := h.Liveness("a1")
			return ok && lv.Connected
		}
		for range 5 { // a healthy agent beats every interval
			time.Sleep(beat)
			h.onHeartbeat(t.Context(), s, &turbulencev1.Heartbeat{})
			if !connected() {
				t.Fatal("agent beating every interval shown disconnected")
			}
		}
		time.Sleep(2 * beat) // one beat missed, the next one due now
		if !connected() {
			t.Fatal("agent shown disconnected before a whole interval past its missed beat")
		}
		time.Sleep(time.Millisecond)
		if connected() {
			t.Error("agent silent for two heartbeat intervals still shown connected")
		}
		h.onHeartbeat(t.Context(), s, &turbulencev1.Heartbeat{})
		if !connected() {
			t.Error("agent heard again not shown connected")
		}
	})
}

// TestExpired_SilentSessionCountsAsAway: the faults of an agent whose
// session is open but silent are decided like those of a disconnected
// one, from the moment it was last heard (its lease's start).
func TestExpired_SilentSessionCountsAsAway(t *testing.T) {
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
		h := New(Config{Raft: leaderOnly{}, State: st, HeartbeatInterval: beat, LeaseTTL: ttl})
		leaderSince := time.Now()
		s := openSession(t, h, "a1")
		time.Sleep(beat)
		h.onHeartbeat(t.Context(), s, &turbulencev1.Heartbeat{})
		heard := time.Now()
		time.Sleep(ttl + leaseGrace)
		if got := h.expired(leaderSince, time.Now()); len(got) != 0 {
			t.Fatalf("expired at the lease's end + grace = %v, want nothing yet", got)
		}
		time.Sleep(time.Millisecond)
		got := h.expired(leaderSince, time.Now())
		if len(got) != 1 || got[0].faultID != "f1" || !got[0].since.Equal(heard.Add(ttl)) {
			t.Errorf("expired = %+v, want f1 since %s (last heard + TTL)", got, heard.Add(ttl))
		}
	})
}
