package agentapi_test

import (
	"context"
	"errors"
	"testing"

	"github.com/turbulence-sre/turbulence/controller/controllertest"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// TestFollower_RedirectRenewsNoLease is the controller's half of invariant
// 2 for followers: a Hello that reaches a follower is answered with one
// Redirect and nothing else — no Welcome, no LeaseRenewal, no session —
// and the stream ends. An agent bounced between followers that cannot
// reach the leader must hear nothing that renews its lease, and no
// follower may count it as connected (the leader's expiry check works from
// where the agent really is).
func TestFollower_RedirectRenewsNoLease(t *testing.T) {
	c := controllertest.NewCluster(t, 3, nil)
	leader := c.WaitLeader(t, wait)
	for _, f := range c.Followers() {
		controllertest.WaitFor(t, wait, "the follower to know the leader", func() bool {
			return f.Controller.LeaderID() == leader.Config.NodeID
		})
		a := f.OpenAgentStream(t)
		a.Send(t, &turbulencev1.AgentMessage{Msg: &turbulencev1.AgentMessage_Hello{Hello: &turbulencev1.Hello{AgentId: controllertest.AgentName}}})
		var got []*turbulencev1.ControllerMessage
		var err error
		for {
			var m *turbulencev1.ControllerMessage
			if m, err = a.Recv(wait); err != nil {
				break
			}
			got = append(got, m)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("follower %s kept the stream open: %v", f.Config.NodeID, err)
		}
		if len(got) != 1 || got[0].GetRedirect().GetLeaderAddress() != leader.Addr {
			t.Fatalf("follower %s sent %v (stream ended with %v); want exactly one Redirect to %s", f.Config.NodeID, got, err, leader.Addr)
		}
		if n := f.Controller.ConnectedAgents(); n != 0 {
			t.Errorf("follower %s counts %d connected agents after a Redirect, want 0", f.Config.NodeID, n)
		}
	}
	// Nothing reached the leader either: the agent never registered.
	list, err := leader.AdminClient(t).ListAgents(t.Context(), &turbulencev1.ListAgentsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetAgents()) != 0 {
		t.Errorf("agents after Redirects only = %v, want none", list.GetAgents())
	}
}
