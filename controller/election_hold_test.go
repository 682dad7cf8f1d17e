package controller_test

import (
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/controller/controllertest"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// An agent whose Hello reaches a node during an election is held there
// and sent on as soon as a leader exists (Redirect, or Welcome if that
// very node is elected), instead of being refused into its backoff.
func TestCluster_HelloDuringElectionIsHeldUntilALeaderExists(t *testing.T) {
	c := controllertest.NewCluster(t, 3, nil)
	leader := c.Leader()
	followers := c.Followers()
	survivor, down := followers[0], followers[1]
	// Take quorum away: the survivor cannot elect anyone. Crash, not
	// Stop: a graceful stop would hand leadership around first.
	for _, n := range []*controllertest.Node{leader, down} {
		if err := n.Crash(); err != nil {
			t.Fatal(err)
		}
	}
	controllertest.WaitFor(t, 10*time.Second, survivor.Config.NodeID+" to know no leader", func() bool {
		return survivor.Controller.LeaderID() == ""
	})
	a := survivor.OpenAgentStream(t)
	a.Send(t, &turbulencev1.AgentMessage{Msg: &turbulencev1.AgentMessage_Hello{Hello: &turbulencev1.Hello{
		AgentId: controllertest.AgentName, Capabilities: &turbulencev1.Capabilities{FaultKinds: []string{"cpu"}},
	}}})
	// Quorum comes back while the Hello waits.
	restarted := time.Now()
	down.Restart(t)
	m, err := a.Recv(10 * time.Second)
	if err != nil {
		t.Fatalf("held Hello: %v; want a Redirect or a Welcome once a leader exists", err)
	}
	t.Logf("answered %s after the restart: %v", time.Since(restarted).Round(time.Millisecond), m)
	nl := c.WaitLeader(t, failoverLimit)
	switch {
	case m.GetRedirect() != nil:
		if got := m.GetRedirect().GetLeaderAddress(); got != nl.Addr {
			t.Errorf("redirected to %s, want the new leader %s", got, nl.Addr)
		}
	case m.GetWelcome() != nil:
		if nl != survivor {
			t.Errorf("Welcome from %s, but %s leads", survivor.Config.NodeID, nl.Config.NodeID)
		}
	default:
		t.Errorf("first message = %v, want a Redirect or a Welcome", m)
	}
}
