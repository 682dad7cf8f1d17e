package controller_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/turbulence-sre/turbulence/controller"
	"github.com/turbulence-sre/turbulence/controller/controllertest"
	"github.com/turbulence-sre/turbulence/internal/testutil"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// raftLeaders returns the running nodes raft calls leader now, barrier
// passed or not.
func raftLeaders(c *controllertest.Cluster) []*controllertest.Node {
	var out []*controllertest.Node
	for _, n := range c.Nodes {
		if n.Running() && n.Controller.RaftLeader() {
			out = append(out, n)
		}
	}
	return out
}

// A leader stopped gracefully (SIGTERM) hands leadership over before it
// shuts down. Without the hand-over no other node could lead when Stop
// returns: raft on the old leader heartbeats until the very end of its
// shutdown, and a follower starts an election only a heartbeat timeout
// after the last heartbeat. With it, the new leader exists already.
func TestCluster_GracefulStopHandsLeadershipOver(t *testing.T) {
	c := controllertest.NewCluster(t, 3, nil)
	old := c.Leader()
	files := old.IssueCert(t, tlsutil.Identity{Role: tlsutil.RoleAgent, Name: "follower-1"})
	agent, err := controllertest.StartFollowingAgent("follower-1", c.Addrs(), files)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(agent.Stop)
	controllertest.WaitFor(t, 10*time.Second, "the agent attached to the leader", func() bool { return agent.Attached() == old.Addr })

	start := time.Now()
	if err := old.Stop(); err != nil {
		t.Fatalf("graceful stop of the leader: %v", err)
	}
	stopped := time.Since(start)
	leaders := raftLeaders(c)
	if len(leaders) != 1 {
		t.Fatalf("when the leader's graceful stop returned, raft leaders = %d, want 1 (handed over, not left to an election timeout)", len(leaders))
	}
	nl := leaders[0]
	ready := c.WaitLeader(t, failoverLimit)
	readyAfter := time.Since(start)
	if ready != nl {
		t.Errorf("leader past its barrier is %s, want %s, the one handed over to", ready.Config.NodeID, nl.Config.NodeID)
	}
	// The fleet follows: the agent whose session ended re-attaches to
	// the new leader.
	controllertest.WaitFor(t, 10*time.Second, "the agent re-attached to the new leader", func() bool { return agent.Attached() == nl.Addr })
	t.Logf("graceful stop of %s returned after %s with %s leading; barrier passed after %s; agent re-attached after %s",
		old.Config.NodeID, stopped.Round(time.Millisecond), nl.Config.NodeID, readyAfter.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))

	// The old node comes back as a follower of the new leader.
	old.Restart(t)
	controllertest.WaitFor(t, 10*time.Second, "the restarted node to follow the new leader", func() bool {
		return old.Controller.LeaderID() == nl.Config.NodeID
	})
}

// A one-node cluster has nobody to hand leadership to: its stop says so
// and goes on, cleanly.
func TestCluster_OneNodeStopsCleanlyWithoutHandOver(t *testing.T) {
	var logs testutil.SyncBuffer
	c := controllertest.NewCluster(t, 1, func(_ int, cfg *controller.Config) {
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	n := c.Nodes[0]
	start := time.Now()
	if err := n.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	t.Logf("one-node stop took %s", time.Since(start).Round(time.Millisecond))
	out := logs.String()
	if !strings.Contains(out, "no other voter to hand leadership to") {
		t.Errorf("log does not say the hand-over was skipped for want of another voter:\n%s", out)
	}
	if strings.Contains(out, "hand-over failed") || !strings.Contains(out, "controller stopped") {
		t.Errorf("log of a clean one-node stop:\n%s", out)
	}
}

// A leader that steps down stops its leader-only work at once: it ends
// the agents' sessions (so it renews no lease, invariant 2), stops
// announcing itself as serving agents, and redirects a new Hello to the
// new leader instead of welcoming it.
func TestCluster_SteppedDownLeaderStopsLeaderOnlyWork(t *testing.T) {
	c := controllertest.NewCluster(t, 3, nil)
	old := c.Leader()
	agent := old.ConnectAgent(t, nil)
	agent.Send(t, &turbulencev1.AgentMessage{Msg: &turbulencev1.AgentMessage_Heartbeat{Heartbeat: &turbulencev1.Heartbeat{}}})
	if m, err := agent.Recv(10 * time.Second); err != nil || m.GetLease() == nil {
		t.Fatalf("answer to a heartbeat = %v, %v; want a LeaseRenewal", m, err)
	}

	newID, err := old.Controller.TransferLeadership(5 * time.Second)
	if err != nil {
		t.Fatalf("transfer leadership: %v", err)
	}
	// The session ends with Unavailable: the agent reconnects and finds
	// the new leader. Lease renewals still queued may come first.
	deadline := time.Now().Add(10 * time.Second)
	for {
		m, err := agent.Recv(time.Until(deadline))
		if err != nil {
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("session on the deposed leader ended with %v, want Unavailable", err)
			}
			break
		}
		if m.GetLease() == nil {
			t.Fatalf("deposed leader sent %v; want nothing but the end of the session", m)
		}
	}
	controllertest.WaitFor(t, 5*time.Second, "the deposed leader to forget the session", func() bool {
		return !old.Controller.IsLeader() && old.Controller.ConnectedAgents() == 0
	})
	hc := healthpb.NewHealthClient(old.Dial(t, old.PKI.Admin))
	resp, err := hc.Check(t.Context(), &healthpb.HealthCheckRequest{Service: "turbulence.v1.AgentService"})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("AgentService health on the deposed leader = %v, %v; want NOT_SERVING", resp.GetStatus(), err)
	}

	var nl *controllertest.Node
	for _, n := range c.Nodes {
		if n.Config.NodeID == newID {
			nl = n
		}
	}
	if nl == nil {
		t.Fatalf("transfer named %q, which is not a node of the cluster", newID)
	}
	again := old.OpenAgentStream(t)
	again.Send(t, &turbulencev1.AgentMessage{Msg: &turbulencev1.AgentMessage_Hello{Hello: &turbulencev1.Hello{AgentId: controllertest.AgentName}}})
	m, err := again.Recv(10 * time.Second)
	if err != nil || m.GetRedirect().GetLeaderAddress() != nl.Addr {
		t.Errorf("Hello on the deposed leader = %v, %v; want a Redirect to %s", m, err, nl.Addr)
	}
}
