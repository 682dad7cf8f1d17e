package e2e

import (
	"os"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/turbulence-sre/turbulence/agent"
	"github.com/turbulence-sre/turbulence/controller/cli"
	"github.com/turbulence-sre/turbulence/controller/controllertest"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// TestFaultGroup_TwoOfThreeWebAgentsThenHalt: four real agents (three
// role=web, one role=db); `fault apply cpu --select role=web --count 2`
// loads exactly two of the web agents, with real workers, and no other
// agent; `turbctl halt` takes both back.
func TestFaultGroup_TwoOfThreeWebAgentsThenHalt(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("workers and their measurement need Linux /proc")
	}
	srv := controllertest.NewServer(t, nil)
	f := &fleet{srv: srv, api: srv.AdminClient(t)}
	agents := map[string]*agent.Agent{}
	for id, role := range map[string]string{"web-1": "web", "web-2": "web", "web-3": "web", "db-1": "db"} {
		files := srv.IssueCert(t, tlsutil.Identity{Role: tlsutil.RoleAgent, Name: id})
		agents[id] = runAgent(t, []string{srv.Addr}, files, func(c *agent.Config) { c.Labels = map[string]string{"role": role} })
	}
	controllertest.WaitFor(t, waitLong, "the four agents to connect", func() bool {
		resp, err := f.api.ListAgents(t.Context(), &turbulencev1.ListAgentsRequest{})
		n := 0
		for _, a := range resp.GetAgents() {
			if a.GetConnected() {
				n++
			}
		}
		return err == nil && n == 4
	})

	code, out, stderr := f.turbctl(t, "fault", "apply", "cpu", "--cores", "1", "--load", "20", "--duration", "5m",
		"--select", "role=web", "--count", "2", "-o", "json")
	if code != cli.ExitOK {
		t.Fatalf("turbctl fault apply --select: exit %d, stderr:\n%s", code, stderr)
	}
	var g turbulencev1.FaultGroup
	if err := protojson.Unmarshal([]byte(out), &g); err != nil {
		t.Fatalf("group JSON: %v\n%s", err, out)
	}
	faultOf := map[string]string{}
	for _, m := range g.GetMembers() {
		if m.GetRefusal() == "" {
			faultOf[m.GetAgentId()] = m.GetFaultId()
		}
	}
	chosen := slices.Sorted(func(yield func(string) bool) {
		for id := range faultOf {
			if !yield(id) {
				return
			}
		}
	})
	if len(chosen) != 2 || !strings.HasPrefix(chosen[0], "web-") || !strings.HasPrefix(chosen[1], "web-") || g.GetSeed() == 0 {
		t.Fatalf("chosen = %v (seed %d), want two web agents and the seed", chosen, g.GetSeed())
	}
	pids := map[string]int32{}
	for _, id := range chosen {
		controllertest.WaitFor(t, waitLong, "the worker on "+id+" to run", func() bool {
			for _, st := range agents[id].Faults() {
				if st.GetFaultId() == faultOf[id] && st.GetState() == stateActive && st.GetWorkerPid() > 0 {
					pids[id] = st.GetWorkerPid()
					return true
				}
			}
			return false
		})
		if !alive(pids[id]) {
			t.Errorf("%s: worker %d reported but not alive", id, pids[id])
		}
	}
	// Every agent got its command in the same dispatch; the others hold
	// nothing, and the controller recorded nothing for them.
	for id, a := range agents {
		if _, ok := faultOf[id]; !ok && len(a.Faults()) != 0 {
			t.Errorf("%s was not chosen but holds %v", id, a.Faults())
		}
	}
	list, err := f.api.ListFaults(t.Context(), &turbulencev1.ListFaultsRequest{})
	if err != nil || len(list.GetFaults()) != 2 {
		t.Fatalf("faults = %v, %v; want the two of the group", list, err)
	}
	if code, out, _ := f.turbctl(t, "fault", "group", "show", g.GetId()); code != cli.ExitOK || !strings.Contains(out, "2 agents") {
		t.Errorf("fault group show: exit %d:\n%s", code, out)
	}

	if code, _, stderr := f.turbctl(t, "halt", "--reason", "e2e group"); code != cli.ExitOK {
		t.Fatalf("turbctl halt: exit %d:\n%s", code, stderr)
	}
	for _, id := range chosen {
		f.waitReverted(t, faultOf[id])
		if alive(pids[id]) {
			t.Errorf("%s: worker %d alive after the halt", id, pids[id])
		}
	}
}
