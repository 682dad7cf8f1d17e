package agentapi_test

import (
	"testing"

	"github.com/turbulence-sre/turbulence/controller/controllertest"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// A Hello that describes the agent exactly as the state holds it (a
// reconnect, every agent after a failover) is not written to raft; one
// that changes its labels is.
func TestConnect_UnchangedRegistrationIsNotWritten(t *testing.T) {
	srv := controllertest.NewServer(t, nil)
	hello := func(rack string) *turbulencev1.Hello {
		return &turbulencev1.Hello{Labels: map[string]string{"rack": rack}, Facts: &turbulencev1.HostFacts{Hostname: "h1"}}
	}
	admin := srv.AdminClient(t)
	agent := func() *turbulencev1.Agent {
		t.Helper()
		a, err := admin.GetAgent(t.Context(), &turbulencev1.GetAgentRequest{Id: controllertest.AgentName})
		if err != nil {
			t.Fatalf("GetAgent: %v", err)
		}
		return a
	}
	srv.ConnectAgent(t, hello("r1")).Vanish()
	registered := agent()

	before := srv.Controller.LastRaftIndex()
	srv.ConnectAgent(t, hello("r1")).Vanish()
	if after := srv.Controller.LastRaftIndex(); after != before {
		t.Errorf("raft index %d -> %d across a Hello that changed nothing, want no write", before, after)
	}
	if again := agent(); !again.GetLastRegisteredAt().AsTime().Equal(registered.GetLastRegisteredAt().AsTime()) {
		t.Errorf("last registered %v, want %v kept", again.GetLastRegisteredAt().AsTime(), registered.GetLastRegisteredAt().AsTime())
	}

	srv.ConnectAgent(t, hello("r2"))
	if after := srv.Controller.LastRaftIndex(); after == before {
		t.Error("a Hello with new labels wrote nothing")
	}
	if a := agent(); a.GetLabels()["rack"] != "r2" {
		t.Errorf("labels after the new Hello = %v, want rack=r2", a.GetLabels())
	}
}
