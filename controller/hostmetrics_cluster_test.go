package controller_test

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/turbulence-sre/turbulence/controller/controllertest"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// TestCluster_AgentMetricsThroughAFollower: host metrics are the
// leader's soft state, so a follower forwards GetAgentMetrics to the
// leader (controller/forward, LeaderReads) instead of answering from its
// own empty store. After a failover the new leader's series starts
// empty: nothing of it was in raft.
func TestCluster_AgentMetricsThroughAFollower(t *testing.T) {
	c := controllertest.NewCluster(t, 3, nil)
	leader := c.Leader()
	agent := leader.ConnectAgent(t, nil)
	cpu := 37.5
	agent.Send(t, &turbulencev1.AgentMessage{Msg: &turbulencev1.AgentMessage_Heartbeat{Heartbeat: &turbulencev1.Heartbeat{
		SentAt:      timestamppb.Now(),
		HostMetrics: &turbulencev1.HostMetrics{SampledAt: timestamppb.Now(), CpuPercent: &cpu},
	}}})
	follower := c.Followers()[0]
	viewer := follower.AdminClient(t)
	req := &turbulencev1.GetAgentMetricsRequest{AgentId: controllertest.AgentName}
	controllertest.WaitFor(t, 10*time.Second, "the leader's sample read through a follower", func() bool {
		resp, err := viewer.GetAgentMetrics(t.Context(), req)
		if err != nil {
			t.Fatalf("GetAgentMetrics through follower %s: %v", follower.Config.NodeID, err)
		}
		return len(resp.GetSamples()) == 1 && resp.GetSamples()[0].GetCpuPercent() == cpu
	})
	if follower.Controller.HostMetrics().Agents() != 0 {
		t.Error("the follower keeps host metrics of its own")
	}

	if err := leader.Stop(); err != nil {
		t.Fatal(err)
	}
	next := c.WaitLeader(t, 30*time.Second)
	resp, err := next.AdminClient(t).GetAgentMetrics(t.Context(), req)
	if err != nil || len(resp.GetSamples()) != 0 {
		t.Errorf("GetAgentMetrics on the new leader %s = %v, %v; want an empty series", next.Config.NodeID, resp, err)
	}
}
