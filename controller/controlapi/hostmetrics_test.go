package controlapi_test

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/turbulence-sre/turbulence/controller/controllertest"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

func f64(v float64) *float64 { return &v }

// heartbeat sends a heartbeat carrying a host metrics sample taken at
// sampled with cpu as its CPU figure.
func heartbeat(t *testing.T, a *controllertest.FakeAgent, sampled time.Time, cpu float64) {
	t.Helper()
	a.Send(t, &turbulencev1.AgentMessage{Msg: &turbulencev1.AgentMessage_Heartbeat{Heartbeat: &turbulencev1.Heartbeat{
		SentAt: timestamppb.New(sampled),
		HostMetrics: &turbulencev1.HostMetrics{
			SampledAt:               timestamppb.New(sampled),
			CpuPercent:              f64(cpu),
			MemoryUsedPercent:       f64(40),
			DiskReadBytesPerSecond:  f64(1000),
			DiskWriteBytesPerSecond: f64(24),
			// network rates not read by this agent: absent
		},
	}}})
}

func TestGetAgentMetrics_SeriesFromHeartbeats(t *testing.T) {
	srv, agent := newServerWithAgent(t, nil)
	viewer := srv.ControlClient(t, srv.IssueCert(t, tlsutil.Identity{Role: tlsutil.RoleViewer, Name: "vera"}))
	ctx := t.Context()
	start := time.Now()
	for i := range 3 {
		heartbeat(t, agent, start.Add(time.Duration(i)*time.Millisecond), float64(10*(i+1)))
	}
	var resp *turbulencev1.GetAgentMetricsResponse
	controllertest.WaitFor(t, 10*time.Second, "three samples", func() bool {
		var err error
		resp, err = viewer.GetAgentMetrics(ctx, &turbulencev1.GetAgentMetricsRequest{AgentId: controllertest.AgentName})
		if err != nil {
			t.Fatal(err)
		}
		return len(resp.GetSamples()) == 3
	})
	for i, s := range resp.GetSamples() {
		if s.GetCpuPercent() != float64(10*(i+1)) || s.GetDiskIoBytesPerSecond() != 1024 || s.NetworkBytesPerSecond != nil {
			t.Errorf("sample %d = %v, want cpu %d, disk io 1024, no network figure", i, s, 10*(i+1))
		}
	}
	if resp.GetWindow().AsDuration() != 10*time.Minute || resp.GetCapacity() != 600 {
		t.Errorf("window %v, capacity %d; want the defaults 10m and 600", resp.GetWindow().AsDuration(), resp.GetCapacity())
	}
	latest, err := viewer.GetAgentMetrics(ctx, &turbulencev1.GetAgentMetricsRequest{AgentId: controllertest.AgentName, LatestOnly: true})
	if err != nil || len(latest.GetSamples()) != 1 || latest.GetSamples()[0].GetCpuPercent() != 30 {
		t.Errorf("latest only = %v, %v; want the one sample with cpu 30", latest, err)
	}
	later, err := viewer.GetAgentMetrics(ctx, &turbulencev1.GetAgentMetricsRequest{AgentId: controllertest.AgentName, Since: timestamppb.New(time.Now().Add(time.Minute))})
	if err != nil || len(later.GetSamples()) != 0 {
		t.Errorf("since a minute ahead = %v, %v; want no samples", later, err)
	}
	// The Go API the experiment runner reads is the same store.
	if v, _, ok := srv.Controller.HostMetrics().Latest(controllertest.AgentName, "cpu_percent"); !ok || v != 30 {
		t.Errorf("HostMetrics().Latest(cpu_percent) = %v, %v; want 30", v, ok)
	}
}

func TestGetAgentMetrics_BadRequests(t *testing.T) {
	srv, _ := newServerWithAgent(t, nil)
	admin := srv.AdminClient(t)
	ctx := t.Context()
	_, err := admin.GetAgentMetrics(ctx, &turbulencev1.GetAgentMetricsRequest{})
	wantCode(t, err, codes.InvalidArgument, "agent_id", "required")
	_, err = admin.GetAgentMetrics(ctx, &turbulencev1.GetAgentMetricsRequest{AgentId: "nobody"})
	wantCode(t, err, codes.NotFound, `agent_id: agent "nobody" is not registered`)
	_, err = admin.GetAgentMetrics(ctx, &turbulencev1.GetAgentMetricsRequest{AgentId: controllertest.AgentName, Since: &timestamppb.Timestamp{Nanos: -1}})
	wantCode(t, err, codes.InvalidArgument, "since")
	_, err = admin.GetAgentMetrics(ctx, &turbulencev1.GetAgentMetricsRequest{AgentId: string(make([]byte, 200))})
	wantCode(t, err, codes.InvalidArgument, "agent_id")
	// A registered agent with no sample yet: an empty series, no error.
	resp, err := admin.GetAgentMetrics(ctx, &turbulencev1.GetAgentMetricsRequest{AgentId: controllertest.AgentName})
	if err != nil || len(resp.GetSamples()) != 0 {
		t.Errorf("GetAgentMetrics before any sample = %v, %v; want an empty series", resp, err)
	}
}
