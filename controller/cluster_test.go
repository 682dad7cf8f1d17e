package controller_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/turbulence-sre/turbulence/controller/controllertest"
	"github.com/turbulence-sre/turbulence/controller/forward"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// failoverLimit is how long a new leader may take in these tests: raft
// runs with controllertest.FastRaft timings (250 ms heartbeat timeout).
const failoverLimit = 5 * time.Second

func cpuFault(requestID string) *turbulencev1.ApplyFaultRequest {
	return &turbulencev1.ApplyFaultRequest{
		RequestId: requestID,
		AgentId:   controllertest.AgentName,
		Spec: &turbulencev1.FaultSpec{
			Duration: durationpb.New(time.Minute),
			Kind:     &turbulencev1.FaultSpec_Cpu{Cpu: &turbulencev1.CPUSpec{Cores: 1, LoadPercent: 10}},
		},
	}
}

// serverIDs lists the IDs of a ListServers answer, sorted.
func serverIDs(resp *turbulencev1.ListServersResponse) []string {
	var ids []string
	for _, s := range resp.GetServers() {
		ids = append(ids, s.GetId())
	}
	slices.Sort(ids)
	return ids
}

func TestCluster_FormsOnceWithOneLeader(t *testing.T) {
	c := controllertest.NewCluster(t, 3, nil)
	leader := c.Leader()
	followers := c.Followers()
	if len(followers) != 2 {
		t.Fatalf("followers = %d, want 2", len(followers))
	}
	// Any node answers; a viewer may read the membership.
	viewer := followers[0].IssueCert(t, tlsutil.Identity{Role: tlsutil.RoleViewer, Name: "v"})
	resp, err := followers[0].ClusterClient(t, viewer).ListServers(t.Context(), &turbulencev1.ListServersRequest{})
	if err != nil {
		t.Fatalf("ListServers on a follower: %v", err)
	}
	if got, want := serverIDs(resp), []string{"c1", "c2", "c3"}; !slices.Equal(got, want) {
		t.Errorf("servers = %v, want %v", got, want)
	}
	for _, s := range resp.GetServers() {
		if s.GetGrpcAddress() == "" || s.GetRaftAddress() == "" || s.GetSuffrage() != "voter" {
			t.Errorf("server %v: want both addresses and voter", s)
		}
		if s.GetLeader() != (s.GetId() == leader.Config.NodeID) {
			t.Errorf("server %s leader = %v; the leader is %s", s.GetId(), s.GetLeader(), leader.Config.NodeID)
		}
	}
	// A viewer may not change the membership.
	_, err = followers[0].ClusterClient(t, viewer).RemoveServer(t.Context(), &turbulencev1.RemoveServerRequest{Id: "c3"})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("RemoveServer as viewer: %v, want PermissionDenied", err)
	}
}

func TestCluster_WriteOnFollowerIsForwardedAsTheCaller(t *testing.T) {
	c := controllertest.NewCluster(t, 3, nil)
	leader := c.Leader()
	agent := leader.ConnectAgent(t, nil)
	follower := c.Followers()[0]

	f, err := follower.AdminClient(t).ApplyFault(t.Context(), cpuFault(""))
	if err != nil {
		t.Fatalf("ApplyFault on a follower: %v", err)
	}
	// The leader authorised and recorded the human, not the follower.
	if f.GetCreatedBy() != "admin/dev-admin" {
		t.Errorf("created_by = %q, want admin/dev-admin", f.GetCreatedBy())
	}
	// The leader, which holds the agent's session, dispatched it.
	if m := agent.Next(t, 5*time.Second); m.GetApply().GetFault().GetId() != f.GetId() {
		t.Errorf("agent got %v, want ApplyFault %s", m, f.GetId())
	}
	// Reads are local and the follower's state catches up.
	controllertest.WaitFor(t, 5*time.Second, "the fault on the follower", func() bool {
		_, err := follower.AdminClient(t).GetFault(t.Context(), &turbulencev1.GetFaultRequest{Id: f.GetId()})
		return err == nil
	})

	// A viewer's write through a follower is refused by the leader, which
	// sees the viewer, not the forwarding controller.
	viewer := follower.IssueCert(t, tlsutil.Identity{Role: tlsutil.RoleViewer, Name: "v"})
	_, err = follower.ControlClient(t, viewer).ApplyFault(t.Context(), cpuFault(""))
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("ApplyFault as viewer via follower: %v, want PermissionDenied", err)
	}
}

func TestCluster_ForwardedIdentityTrustedOnlyFromControllers(t *testing.T) {
	c := controllertest.NewCluster(t, 3, nil)
	leader := c.Leader()
	operator := leader.IssueCert(t, tlsutil.Identity{Role: tlsutil.RoleViewer, Name: "mallory"})
	ctx := metadata.AppendToOutgoingContext(t.Context(), forward.MDForwardedFor, "admin/root")
	_, err := leader.ControlClient(t, operator).Halt(ctx, &turbulencev1.HaltRequest{Reason: "spoofed"})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("Halt with a spoofed forwarded identity: %v, want PermissionDenied", err)
	}
	if h, err := leader.AdminClient(t).GetHaltStatus(t.Context(), &turbulencev1.GetHaltStatusRequest{}); err != nil || h.GetHalted() {
		t.Errorf("halt status = %v, %v; want not halted", h, err)
	}
}

func TestCluster_RetryWithSameRequestIDMakesOneFault(t *testing.T) {
	c := controllertest.NewCluster(t, 3, nil)
	leader := c.Leader()
	leader.ConnectAgent(t, nil)
	follower := c.Followers()[0]

	req := cpuFault("retry-1")
	first, err := follower.AdminClient(t).ApplyFault(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	// The same request again: through the other follower and the leader.
	for _, n := range []*controllertest.Node{c.Followers()[1], leader, follower} {
		again, err := n.AdminClient(t).ApplyFault(t.Context(), req)
		if err != nil {
			t.Fatalf("retry on %s: %v", n.Config.NodeID, err)
		}
		if again.GetId() != first.GetId() {
			t.Errorf("retry on %s made fault %s, want %s", n.Config.NodeID, again.GetId(), first.GetId())
		}
	}
	list, err := leader.AdminClient(t).ListFaults(t.Context(), &turbulencev1.ListFaultsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetFaults()) != 1 {
		t.Errorf("faults = %d, want 1", len(list.GetFaults()))
	}
}

func TestCluster_LeaderKilledNewLeaderTakesWrites(t *testing.T) {
	c := controllertest.NewCluster(t, 3, nil)
	old := c.Leader()
	old.ConnectAgent(t, nil)
	survivor := c.Followers()[0]
	admin := survivor.AdminClient(t)
	if _, err := admin.ApplyFault(t.Context(), cpuFault("before")); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	if err := old.Crash(); err != nil {
		t.Fatalf("crash leader: %v", err)
	}
	// A write sent at once is held through the election (hold timeout)
	// and lands on the new leader.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := admin.Halt(ctx, &turbulencev1.HaltRequest{RequestId: "h-1", Reason: "during election"}); err != nil {
		t.Fatalf("Halt during the election: %v", err)
	}
	newLeader := c.WaitLeader(t, failoverLimit)
	t.Logf("new leader %s after %s", newLeader.Config.NodeID, time.Since(start))
	if newLeader == old {
		t.Fatal("the stopped node still leads")
	}
	if h, err := newLeader.AdminClient(t).GetHaltStatus(t.Context(), &turbulencev1.GetHaltStatusRequest{}); err != nil || !h.GetHalted() {
		t.Errorf("new leader halt status = %v, %v; want halted", h, err)
	}

	// The old leader restarts with its data and rejoins by itself.
	old.Restart(t)
	controllertest.WaitFor(t, 10*time.Second, "the restarted node to catch up", func() bool {
		h, err := old.AdminClient(t).GetHaltStatus(t.Context(), &turbulencev1.GetHaltStatusRequest{})
		return err == nil && h.GetHalted()
	})
	servers, err := old.Controller.Servers()
	if err != nil || len(servers) != 3 {
		t.Errorf("restarted node's configuration = %v, %v; want 3 servers", servers, err)
	}
}

func TestCluster_HaltJustBeforeLeaderCrashIsHonoured(t *testing.T) {
	c := controllertest.NewCluster(t, 3, nil)
	old := c.Leader()
	agent := old.ConnectAgent(t, nil)
	f, err := old.AdminClient(t).ApplyFault(t.Context(), cpuFault("f-1"))
	if err != nil {
		t.Fatal(err)
	}
	agent.Next(t, 5*time.Second) // the ApplyFault
	// Invariant 5: the halt is acknowledged once committed by a quorum…
	if _, err := old.AdminClient(t).Halt(t.Context(), &turbulencev1.HaltRequest{RequestId: "h-1", Reason: "stop now"}); err != nil {
		t.Fatal(err)
	}
	// …so the leader may die right after it.
	if err := old.Crash(); err != nil {
		t.Fatal(err)
	}
	nl := c.WaitLeader(t, failoverLimit)
	api := nl.AdminClient(t)
	h, err := api.GetHaltStatus(t.Context(), &turbulencev1.GetHaltStatusRequest{})
	if err != nil || !h.GetHalted() || h.GetReason() != "stop now" {
		t.Fatalf("new leader halt = %v, %v; want halted", h, err)
	}
	got, err := api.GetFault(t.Context(), &turbulencev1.GetFaultRequest{Id: f.GetId()})
	if err != nil || got.GetState() != turbulencev1.FaultState_FAULT_STATE_REVERTING {
		t.Errorf("fault after failover = %v, %v; want REVERTING", got.GetState(), err)
	}
	// New faults are refused, and an agent that reconnects is told.
	if _, err := api.ApplyFault(t.Context(), cpuFault("f-2")); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("ApplyFault after failover while halted: %v, want FailedPrecondition", err)
	}
	again := nl.ConnectAgent(t, nil)
	if !again.Welcome.GetHalted() {
		t.Error("Welcome from the new leader is not halted")
	}
}

func TestCluster_FollowerRedirectsAgentToLeader(t *testing.T) {
	c := controllertest.NewCluster(t, 3, nil)
	leader := c.Leader()
	a := c.Followers()[0].OpenAgentStream(t)
	a.Send(t, &turbulencev1.AgentMessage{Msg: &turbulencev1.AgentMessage_Hello{Hello: &turbulencev1.Hello{AgentId: controllertest.AgentName}}})
	m, err := a.Recv(5 * time.Second)
	if err != nil {
		t.Fatalf("waiting for Redirect: %v", err)
	}
	if got := m.GetRedirect().GetLeaderAddress(); got != leader.Addr {
		t.Errorf("redirect = %v, want leader %s", m, leader.Addr)
	}
}

func TestCluster_NodeJoinsAndIsRemoved(t *testing.T) {
	c := controllertest.NewCluster(t, 3, nil)
	// Join through a follower: the Join is forwarded to the leader.
	joined := c.AddNode(t, c.Followers()[0])
	leader := c.Leader()
	controllertest.WaitFor(t, 10*time.Second, "c4 in the configuration", func() bool {
		resp, err := leader.ClusterClient(t, c.PKI.Admin).ListServers(t.Context(), &turbulencev1.ListServersRequest{})
		return err == nil && slices.Contains(serverIDs(resp), "c4")
	})
	controllertest.WaitFor(t, 10*time.Second, "c4 to know the leader", func() bool {
		return joined.Controller.LeaderID() == leader.Config.NodeID
	})
	// An operator may not remove; an admin may, through any node.
	op := leader.IssueCert(t, tlsutil.Identity{Role: tlsutil.RoleOperator, Name: "o"})
	if _, err := joined.ClusterClient(t, op).RemoveServer(t.Context(), &turbulencev1.RemoveServerRequest{Id: "c4"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("RemoveServer as operator: %v, want PermissionDenied", err)
	}
	resp, err := c.Followers()[0].ClusterClient(t, c.PKI.Admin).RemoveServer(t.Context(), &turbulencev1.RemoveServerRequest{Id: "c4"})
	if err != nil {
		t.Fatalf("RemoveServer: %v", err)
	}
	if slices.Contains(serverIDs(resp), "c4") {
		t.Errorf("servers after removal = %v", serverIDs(resp))
	}
	if _, err := leader.ClusterClient(t, c.PKI.Admin).RemoveServer(t.Context(), &turbulencev1.RemoveServerRequest{Id: "nope"}); status.Code(err) != codes.NotFound {
		t.Errorf("RemoveServer of an unknown ID: %v, want NotFound", err)
	}
}

func TestCluster_ForwardedWriteIsNotForwardedAgain(t *testing.T) {
	c := controllertest.NewCluster(t, 3, nil)
	follower := c.Followers()[0]
	// As if another follower had forwarded it here: hop limit 1 means the
	// call is refused for the first node to retry, not sent on.
	api := follower.ControlClient(t, c.PKI.Controller)
	ctx := metadata.AppendToOutgoingContext(t.Context(), forward.MDForwardedFor, "admin/dev-admin", forward.MDHops, "1")
	_, err := api.Halt(ctx, &turbulencev1.HaltRequest{RequestId: "hop"})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("forwarded Halt on a follower: %v, want Unavailable", err)
	}
	if h, err := c.Leader().AdminClient(t).GetHaltStatus(t.Context(), &turbulencev1.GetHaltStatusRequest{}); err != nil || h.GetHalted() {
		t.Errorf("halt status = %v, %v; want not halted", h, err)
	}
}
