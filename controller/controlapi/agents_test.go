package controlapi_test

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/turbulence-sre/turbulence/controller/controllertest"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// A local halt on a host (turbulence-agent halt, invariant 5) reaches the
// fleet view: the agent reports it in Hello and in every heartbeat, the
// leader keeps it as soft state, and ListAgents/GetAgent show it.
func TestAgents_ReportLocalHaltFromHeartbeatsAndHello(t *testing.T) {
	srv := controllertest.NewServer(t, nil)
	admin := srv.AdminClient(t)
	ctx := t.Context()
	locallyHalted := func() (list, get bool) {
		t.Helper()
		resp, err := admin.ListAgents(ctx, &turbulencev1.ListAgentsRequest{})
		if err != nil {
			t.Fatalf("ListAgents: %v", err)
		}
		for _, a := range resp.GetAgents() {
			if a.GetId() == controllertest.AgentName {
				list = a.GetLocallyHalted()
			}
		}
		a, err := admin.GetAgent(ctx, &turbulencev1.GetAgentRequest{Id: controllertest.AgentName})
		if err != nil {
			t.Fatalf("GetAgent: %v", err)
		}
		return list, a.GetLocallyHalted()
	}
	heartbeat := func(agent *controllertest.FakeAgent, halted bool) {
		agent.Send(t, &turbulencev1.AgentMessage{Msg: &turbulencev1.AgentMessage_Heartbeat{Heartbeat: &turbulencev1.Heartbeat{
			LocallyHalted: halted, SentAt: timestamppb.Now(),
		}}})
	}

	agent := srv.ConnectAgent(t, nil)
	if l, g := locallyHalted(); l || g {
		t.Fatalf("locally_halted = %v/%v (list/get) before any halt, want false", l, g)
	}
	heartbeat(agent, true)
	controllertest.WaitFor(t, 10*time.Second, "ListAgents and GetAgent to show the local halt", func() bool {
		l, g := locallyHalted()
		return l && g
	})
	heartbeat(agent, false)
	controllertest.WaitFor(t, 10*time.Second, "the local halt to clear after a resume", func() bool {
		l, g := locallyHalted()
		return !l && !g
	})

	// An agent halted while it could not reach the controller says so in
	// its Hello: the fleet view shows it as soon as the session is open.
	srv.ConnectAgent(t, &turbulencev1.Hello{LocallyHalted: true})
	if l, g := locallyHalted(); !l || !g {
		t.Errorf("locally_halted after a Hello with it = %v/%v (list/get), want true", l, g)
	}
}
