package controller_test

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/turbulence-sre/turbulence/controller/controllertest"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// slowToNotice is a raft heartbeat (and election) timeout long enough
// that a follower given it keeps naming a dead leader for the whole test.
const slowToNotice = time.Minute

// After the leader dies, raft on a follower keeps naming it until the
// follower's heartbeat timer fires. In that window the follower must not
// redirect agents to the dead address: it holds the Hello, and answers
// "no leader yet, retry" when none shows up. Once a new leader is heard
// from, Hellos are redirected to it.
func TestCluster_FollowerDoesNotRedirectToASilentLeader(t *testing.T) {
	c := controllertest.NewCluster(t, 3, nil)
	dead := c.Leader()
	followers := c.Followers()
	// The followers would notice the dead leader only after a minute, and
	// elect nobody before: the window is as wide as the test needs.
	for _, f := range followers {
		if err := f.Controller.SetRaftTimeouts(slowToNotice, slowToNotice); err != nil {
			t.Fatal(err)
		}
	}
	if err := dead.Crash(); err != nil {
		t.Fatal(err)
	}
	f := followers[0]
	controllertest.WaitFor(t, 5*time.Second, f.Config.NodeID+" to stop vouching for the silent leader", func() bool {
		return f.Controller.LiveLeaderGRPCAddr() == ""
	})
	if got := f.Controller.LeaderID(); got != dead.Config.NodeID {
		t.Fatalf("raft on %s names leader %q; the test needs it still naming the dead %s", f.Config.NodeID, got, dead.Config.NodeID)
	}

	a := f.OpenAgentStream(t)
	a.Send(t, &turbulencev1.AgentMessage{Msg: &turbulencev1.AgentMessage_Hello{Hello: &turbulencev1.Hello{AgentId: controllertest.AgentName}}})
	m, err := a.Recv(15 * time.Second)
	switch {
	case m.GetRedirect() != nil:
		t.Fatalf("Hello redirected to %s while the leader %s (%s) is dead", m.GetRedirect().GetLeaderAddress(), dead.Config.NodeID, dead.Addr)
	case status.Code(err) != codes.Unavailable:
		t.Fatalf("Hello on a follower of a dead leader: %v, %v; want Unavailable (no leader yet, retry) after the hold", m, err)
	}
	if got := f.Controller.LeaderID(); got != dead.Config.NodeID {
		t.Fatalf("raft on %s stopped naming the dead leader (now %q) while the Hello was held; the test proved nothing", f.Config.NodeID, got)
	}
	t.Logf("held, then refused for a retry: %v", err)

	// Quick to notice again: the followers elect a leader, and a Hello
	// on a follower is redirected to it.
	for _, f := range followers {
		if err := f.Controller.SetRaftTimeouts(controllertest.HeartbeatTimeout, controllertest.HeartbeatTimeout); err != nil {
			t.Fatal(err)
		}
	}
	nl := c.WaitLeader(t, failoverLimit)
	follower := followers[0]
	if follower == nl {
		follower = followers[1]
	}
	b := follower.OpenAgentStream(t)
	b.Send(t, &turbulencev1.AgentMessage{Msg: &turbulencev1.AgentMessage_Hello{Hello: &turbulencev1.Hello{AgentId: controllertest.AgentName}}})
	m, err = b.Recv(10 * time.Second)
	if err != nil || m.GetRedirect().GetLeaderAddress() != nl.Addr {
		t.Errorf("Hello on %s after the election = %v, %v; want a Redirect to the new leader %s", follower.Config.NodeID, m, err, nl.Addr)
	}
}
