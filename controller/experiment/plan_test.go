package experiment_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/turbulence-sre/turbulence/controller"
	"github.com/turbulence-sre/turbulence/controller/controllertest"
	"github.com/turbulence-sre/turbulence/controller/experiment"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fleet starts a real one-node controller (its caps: 50 % of the
// registered fleet) and connects six agents: web-1..web-4 (role=web, cpu
// and memory), db-1 (role=db, memory only) and web-5, locally halted.
func fleet(t *testing.T) (*controllertest.Server, turbulencev1.ControlServiceClient) {
	t.Helper()
	srv := controllertest.NewServer(t, func(c *controller.Config) { c.MaxGroupPercent = 50 })
	for i := 1; i <= 5; i++ {
		srv.ConnectAgent(t, &turbulencev1.Hello{AgentId: fmt.Sprintf("web-%d", i), Labels: map[string]string{"role": "web"},
			Capabilities: &turbulencev1.Capabilities{FaultKinds: []string{"cpu", "memory"}}, LocallyHalted: i == 5})
	}
	srv.ConnectAgent(t, &turbulencev1.Hello{AgentId: "db-1", Labels: map[string]string{"role": "db"},
		Capabilities: &turbulencev1.Capabilities{FaultKinds: []string{"memory"}}})
	client := srv.AdminClient(t)
	controllertest.WaitFor(t, 10*time.Second, "six agents connected", func() bool { return srv.Controller.ConnectedAgents() == 6 })
	return srv, client
}

const planFile = `
name: plan-test
hypothesis: the web tier holds
owner: sre
targets:
  web: {selector: role=web, count: 2}
  db: {agents: [db-1]}
steps:
  - {name: burn, target: web, duration: 1m, fault: {cpu: {cores: 1, load_percent: 50}}}
  - {name: hog, target: web, after: burn, duration: 30s, fault: {memory: {percent_of_total: 10}}}
  - {name: db-hog, target: db, start: 15s, duration: 30s, fault: {memory: {bytes: 1048576}}}
probes:
  - name: web-cpu
    host: {target: web, metric: cpu_percent, max: 95}
steady_state: [web-cpu]
`

func parse(t *testing.T, text string) *experiment.Spec {
	t.Helper()
	s, err := experiment.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	return s
}

// snapshot is what a plan must leave as it was: the raft log, the
// faults, the groups and the audit log.
type snapshot struct {
	raftIndex              uint64
	faults, groups, audits int
}

func takeSnapshot(t *testing.T, srv *controllertest.Server, c turbulencev1.ControlServiceClient) snapshot {
	t.Helper()
	ctx := t.Context()
	f, err := c.ListFaults(ctx, &turbulencev1.ListFaultsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := c.ListFaultGroups(ctx, &turbulencev1.ListFaultGroupsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := c.ListAudit(ctx, &turbulencev1.ListAuditRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return snapshot{srv.Controller.LastRaftIndex(), len(f.GetFaults()), len(g.GetGroups()), len(a.GetEntries())}
}

func TestMakePlan_RealControllerTouchesNothing(t *testing.T) {
	t.Parallel()
	srv, client := fleet(t)
	s := parse(t, planFile)
	before := takeSnapshot(t, srv, client)

	p, err := experiment.MakePlan(t.Context(), s, experiment.ControlFleet(client), nil)
	if err != nil {
		t.Fatalf("MakePlan = %v", err)
	}
	if after := takeSnapshot(t, srv, client); after != before {
		t.Errorf("state after the plan = %+v, before = %+v: a plan must write nothing", after, before)
	}
	if !p.SeedPicked || p.Seed == 0 {
		t.Errorf("plan seed = %d (picked %v), want one picked by the plan", p.Seed, p.SeedPicked)
	}
	db, web := p.Targets[0].Group, p.Targets[1].Group
	if db == nil || web == nil {
		t.Fatalf("targets without a choice: %+v", p.Targets)
	}
	if len(web.Chosen) != 2 || web.Matched != 5 || web.Eligible != 4 || web.Registered != 6 {
		t.Errorf("target web = %+v, want 2 chosen of 5 matched, 4 eligible, 6 registered", web)
	}
	if diff := cmp.Diff([]experiment.Refusal{{Agent: "web-5", Reason: "locally halted"}}, web.Refused); diff != "" {
		t.Errorf("target web refusals (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"db-1"}, db.Chosen); diff != "" {
		t.Errorf("target db chosen (-want +got):\n%s", diff)
	}
	for _, sp := range p.Steps {
		want := web.Chosen
		if sp.Target == "db" {
			want = db.Chosen
		}
		if sp.Group == nil {
			t.Fatalf("step %s has no dry run", sp.Name)
		}
		if diff := cmp.Diff(want, sp.Group.Chosen); diff != "" {
			t.Errorf("step %s hits other agents than its target's (-target +step):\n%s", sp.Name, diff)
		}
	}
	if p.Steps[1].Start.D() != time.Minute || p.Steps[1].End.D() != 90*time.Second || p.FaultsEnd.D() != 90*time.Second {
		t.Errorf("timeline: hog %s..%s, faults end %s; want 1m0s..1m30s, 1m30s", p.Steps[1].Start.D(), p.Steps[1].End.D(), p.FaultsEnd.D())
	}

	// The same seed makes the same choice.
	again, err := experiment.MakePlan(t.Context(), s, experiment.ControlFleet(client), &p.Seed)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(web.Chosen, again.Targets[1].Group.Chosen); diff != "" {
		t.Errorf("same seed, another choice (-first +second):\n%s", diff)
	}
}

func TestMakePlan_ControllerRefusals(t *testing.T) {
	t.Parallel()
	srv, client := fleet(t)
	for _, tc := range []struct {
		name string
		from string
		to   string
		want []string
	}{
		{"selector matches nothing", "role=web, count: 2", "role=cache, count: 2", []string{
			"targets.web: matches no registered agent (selector role=cache)",
		}},
		{"kind no agent of the target supports", "{cpu: {cores: 1, load_percent: 50}}", `{network: {interface: eth0, netem: {delay: "0.1s"}}}`, []string{
			`steps[0].fault: no agent of target "web" supports network faults (the 5 it matches report: cpu, memory)`,
		}},
		{"a later step's kind no agent of the target supports", "{memory: {percent_of_total: 10}}", "{disk_fill: {path: /var/tmp, bytes: 1048576}}", []string{
			`steps[1].fault: no agent of target "web" supports disk_fill faults (the 5 it matches report: cpu, memory)`,
		}},
		{"cap above the controller's", "count: 2", "count: 4", []string{
			"targets.web.count: the controller refuses it: the call would choose 4 agents, above the controller's cap of 3 (50 % of 6 registered agents, at most 1000: --max-group-percent, --max-group-agents); nothing was applied",
		}},
		{"fewer eligible than min", "count: 2", "agents: [web-1, web-2, web-5], count: 3, min: 3", []string{
			"targets.web: the controller refuses it: min: 3 agents required, 2 would be chosen (3 matched, 2 eligible; 1 locally halted): nothing was applied",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := replaceOnce(t, planFile, tc.from, tc.to)
			s := parse(t, text)
			before := takeSnapshot(t, srv, client)
			p, err := experiment.MakePlan(context.Background(), s, experiment.ControlFleet(client), nil)
			var e *experiment.Error
			if !errors.As(err, &e) {
				t.Fatalf("MakePlan = %v, want an *experiment.Error", err)
			}
			got := make([]string, len(e.Problems))
			for i, pr := range e.Problems {
				got[i] = pr.Error()
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("MakePlan problems (-want +got):\n%s", diff)
			}
			if p == nil {
				t.Errorf("MakePlan returned no plan with its problems")
			}
			if after := takeSnapshot(t, srv, client); after != before {
				t.Errorf("state after a refused plan = %+v, before = %+v", after, before)
			}
		})
	}
}

func replaceOnce(t *testing.T, s, from, to string) string {
	t.Helper()
	i := strings.Index(s, from)
	if i < 0 {
		t.Fatalf("%q not in the file", from)
	}
	return s[:i] + to + s[i+len(from):]
}

func TestTargetSeed(t *testing.T) {
	t.Parallel()
	if experiment.TargetSeed(42, "web") == experiment.TargetSeed(42, "db") {
		t.Errorf("TargetSeed gives two targets one seed: two targets with one selector would choose the same agents")
	}
	if experiment.TargetSeed(42, "web") != experiment.TargetSeed(42, "web") || experiment.TargetSeed(42, "web") == experiment.TargetSeed(43, "web") {
		t.Errorf("TargetSeed is not a function of the seed and the name")
	}
}
