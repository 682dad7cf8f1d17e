package controlapi_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/turbulence-sre/turbulence/controller/controllertest"
	"github.com/turbulence-sre/turbulence/internal/limits"
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

// The labels an agent sends in Hello are what the selector of ListAgents
// filters on, through the whole server (agent stream, raft, state, the
// request bounds). A selector above its bound is refused by name.
func TestAgents_SelectByHelloLabels(t *testing.T) {
	srv := controllertest.NewServer(t, nil)
	admin := srv.AdminClient(t)
	ctx := t.Context()
	srv.ConnectAgent(t, &turbulencev1.Hello{Labels: map[string]string{"role": "web", "zone": "a"}})
	list := func(sel string) ([]string, error) {
		resp, err := admin.ListAgents(ctx, &turbulencev1.ListAgentsRequest{Selector: sel})
		var ids []string
		for _, a := range resp.GetAgents() {
			ids = append(ids, a.GetId())
		}
		return ids, err
	}
	controllertest.WaitFor(t, 10*time.Second, "the agent to be registered", func() bool {
		ids, err := list("")
		return err == nil && len(ids) == 1
	})
	for sel, want := range map[string]int{"role=web": 1, "role=web,zone in (a,b)": 1, "role!=web": 0, "role=db": 0, "!zone": 0} {
		ids, err := list(sel)
		if err != nil || len(ids) != want {
			t.Errorf("ListAgents(selector %q) = %v, %v; want %d agents", sel, ids, err, want)
		}
	}
	_, err := list(strings.Repeat("a", limits.MaxSelector+1))
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "selector") {
		t.Errorf("ListAgents(a selector of %d bytes) = %v, want InvalidArgument naming selector", limits.MaxSelector+1, err)
	}
}
