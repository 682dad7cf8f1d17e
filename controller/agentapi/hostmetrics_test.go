package agentapi

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/turbulence-sre/turbulence/controller/hostseries"
	"github.com/turbulence-sre/turbulence/controller/state"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// registered registers a session of agent id on h, as Connect does.
func registered(tb testing.TB, h *Hub, id string) *session {
	tb.Helper()
	ctx, cancel := context.WithCancelCause(context.Background())
	tb.Cleanup(func() { cancel(nil) })
	s := &session{agentID: id, actor: "agent/" + id,
		ctx: ctx, cancel: cancel, commands: make(map[string]command)}
	if err := h.register(s, false); err != nil {
		tb.Fatal(err)
	}
	s.box.take() // the Welcome
	return s
}

func withMetrics(at time.Time, cpu float64) *turbulencev1.Heartbeat {
	return &turbulencev1.Heartbeat{SentAt: timestamppb.New(at), HostMetrics: &turbulencev1.HostMetrics{SampledAt: timestamppb.New(at), CpuPercent: &cpu}}
}

// TestHub_HeartbeatMetricsKeptWhileLeading: a heartbeat's sample reaches
// the series; a node that stops leading forgets every series.
func TestHub_HeartbeatMetricsKeptWhileLeading(t *testing.T) {
	h := New(Config{Raft: leaderOnly{}, State: state.New()})
	s := registered(t, h, "a1")
	h.onHeartbeat(t.Context(), s, &turbulencev1.Heartbeat{}) // an agent without metrics
	if _, _, ok := h.HostMetrics().Latest("a1", hostseries.CPUPercent); ok {
		t.Fatal("a heartbeat without metrics made a sample")
	}
	h.onHeartbeat(t.Context(), s, withMetrics(time.Now(), 64))
	if v, _, ok := h.HostMetrics().Latest("a1", hostseries.CPUPercent); !ok || v != 64 {
		t.Fatalf("Latest(cpu_percent) = %v, %v; want 64", v, ok)
	}
	h.CloseSessions("lost leadership")
	if n := h.HostMetrics().Agents(); n != 0 {
		t.Errorf("%d series kept after leadership was lost, want none", n)
	}
}

// BenchmarkHub_Heartbeat is the leader's cost and allocations of handling
// one heartbeat (no faults held) from each of 10,000 agents in turn, with
// and without a host metrics sample: the difference is what the series
// costs per heartbeat once every agent's ring exists.
func BenchmarkHub_Heartbeat(b *testing.B) {
	for _, metrics := range []bool{false, true} {
		b.Run(fmt.Sprintf("metrics=%v", metrics), func(b *testing.B) {
			const agents = 10_000
			h := New(Config{Raft: leaderOnly{}, State: state.New()})
			sessions := make([]*session, agents)
			hbs := make([]*turbulencev1.Heartbeat, agents)
			at := time.Now()
			for i := range sessions {
				sessions[i] = registered(b, h, fmt.Sprintf("agent-%05d", i))
				hbs[i] = &turbulencev1.Heartbeat{}
				if metrics {
					hbs[i] = withMetrics(at, 50)
					h.onHeartbeat(b.Context(), sessions[i], hbs[i]) // the ring exists
				}
			}
			// Each round a newer sample time, prepared outside the loop.
			stamps := make([]*timestamppb.Timestamp, 256)
			for i := range stamps {
				stamps[i] = timestamppb.New(at.Add(time.Duration(i+1) * time.Second))
			}
			b.ReportAllocs()
			b.ResetTimer()
			n := 0
			for b.Loop() {
				i := n % agents
				if metrics {
					hbs[i].HostMetrics.SampledAt = stamps[(n/agents)%len(stamps)]
				}
				h.onHeartbeat(b.Context(), sessions[i], hbs[i])
				n++
			}
		})
	}
}
