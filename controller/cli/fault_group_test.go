package cli

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

func goldenGroupSpec() *turbulencev1.FaultSpec {
	return &turbulencev1.FaultSpec{Duration: durationpb.New(5 * time.Minute),
		Kind: &turbulencev1.FaultSpec_Cpu{Cpu: &turbulencev1.CPUSpec{Cores: 1, LoadPercent: 50}}}
}

// goldenGroup is a recorded group: three web agents chosen (two active,
// one refused by its agent at dispatch), one locally halted, one offline.
func goldenGroup() *turbulencev1.FaultGroup {
	return &turbulencev1.FaultGroup{
		Id: "g-00a1", Spec: goldenGroupSpec(), Selector: "role=web", Count: 3, Seed: 42, Min: 1,
		CreatedAt: ts(-40 * time.Second), CreatedBy: "admin/alice",
		Registered: 8, Matched: 6, Eligible: 4, Chosen: 3,
		Members: []*turbulencev1.GroupMember{
			{AgentId: "web-1", FaultId: "f-0101", State: turbulencev1.FaultState_FAULT_STATE_ACTIVE, MeasuredCpuPercent: 49.1},
			{AgentId: "web-3", FaultId: "f-0103", State: turbulencev1.FaultState_FAULT_STATE_ACTIVE, MeasuredCpuPercent: 50.4},
			{AgentId: "web-4", FaultId: "f-0104", State: turbulencev1.FaultState_FAULT_STATE_FAILED, Reason: "policy: cpu faults are off on this host"},
			{AgentId: "web-5", Refusal: "locally halted"},
			{AgentId: "web-6", Refusal: "offline"},
		},
		Refusals: []*turbulencev1.RefusalCount{{Reason: "locally halted", Agents: 1}, {Reason: "offline", Agents: 1}},
	}
}

func goldenPlan() *turbulencev1.FaultGroup {
	g := goldenGroup()
	g.Id, g.DryRun, g.CreatedAt = "", true, nil
	for _, m := range g.GetMembers() {
		m.FaultId, m.State, m.Reason, m.MeasuredCpuPercent = "", 0, "", 0
	}
	return g
}

func TestGolden_FaultGroups(t *testing.T) {
	t.Parallel()
	grouped := goldenFaults()
	grouped.Faults = grouped.Faults[:2]
	grouped.Faults[0].GroupId = "g-00a1"
	checkGoldens(t, []string{"table", "json"}, []goldenCase{
		{"fault_group_show", func(a *app) error { return a.printGroup(goldenGroup()) }},
		{"fault_group_dry_run", func(a *app) error { return a.printGroup(goldenPlan()) }},
		{"fault_group_ls", func(a *app) error {
			return a.printGroups(&turbulencev1.ListFaultGroupsResponse{Groups: []*turbulencev1.FaultGroupSummary{{
				Id: "g-00a1", Spec: goldenGroupSpec(), Selector: "role=web", Count: 3, Seed: 42, CreatedAt: ts(-40 * time.Second),
				CreatedBy: "admin/alice", Matched: 6, Eligible: 4, Chosen: 3, Live: 2, Failed: 1,
			}}})
		}},
		{"fault_ls_grouped", func(a *app) error { return a.printFaults(grouped) }},
	})
}

// groupControl answers ApplyFaultGroup with the golden plan and records
// every request.
type groupControl struct {
	turbulencev1.UnimplementedControlServiceServer

	mu   sync.Mutex
	reqs []*turbulencev1.ApplyFaultGroupRequest
}

func (s *groupControl) ApplyFaultGroup(_ context.Context, req *turbulencev1.ApplyFaultGroupRequest) (*turbulencev1.FaultGroup, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs = append(s.reqs, req)
	return goldenPlan(), nil
}

func (s *groupControl) requests() []*turbulencev1.ApplyFaultGroupRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reqs)
}

func startGroup(t *testing.T) (*groupControl, map[string]string) {
	t.Helper()
	s := &groupControl{}
	addr, pki := serveFake(t, func(srv *grpc.Server) { turbulencev1.RegisterControlServiceServer(srv, s) })
	return s, map[string]string{EnvController: addr, EnvCA: pki.Admin.CA, EnvCert: pki.Admin.Cert, EnvKey: pki.Admin.Key}
}

// TestFaultApply_GroupRequest: --select and the group flags become one
// ApplyFaultGroup call carrying them as typed; the dry run's plan prints.
func TestFaultApply_GroupRequest(t *testing.T) {
	t.Parallel()
	s, environ := startGroup(t)
	r := runCLI(t, environ, "fault", "apply", "cpu", "--cores", "1", "--load", "50", "--duration", "5m",
		"--select", "role=web", "--agents", "web-1,web-3", "--count", "2", "--seed", "42", "--min", "2", "--dry-run")
	r.check(t, ExitOK)
	for _, part := range []string{"Dry run:", "web-5  refused  locally halted", "Seed:      42"} {
		if !strings.Contains(r.stdout, part) {
			t.Errorf("dry run printed:\n%s\nwant %q in it", r.stdout, part)
		}
	}
	seed := uint64(42)
	want := &turbulencev1.ApplyFaultGroupRequest{Spec: goldenGroupSpec(), Selector: "role=web", AgentIds: []string{"web-1", "web-3"},
		Count: 2, Seed: &seed, Min: 2, DryRun: true}
	reqs := s.requests()
	if len(reqs) != 1 {
		t.Fatalf("the controller got %d requests, want 1", len(reqs))
	}
	got := proto.CloneOf(reqs[0])
	got.RequestId = ""
	if !proto.Equal(got, want) {
		t.Errorf("request = %v, want %v", got, want)
	}
	// No --seed: none is sent, the controller picks one.
	r = runCLI(t, environ, "fault", "apply", "memory", "--bytes", "1MiB", "--select", "role=web", "--fleet-percent", "10")
	r.check(t, ExitOK)
	if reqs := s.requests(); len(reqs) != 2 || reqs[1].Seed != nil || reqs[1].GetPercent() != 10 {
		t.Errorf("second request = %v, want percent 10 and no seed", reqs[len(reqs)-1])
	}
}

// TestFaultApply_GroupFlagErrors: contradictory or lone group flags exit
// with a usage or invalid-input code naming the flag, and nothing is sent.
func TestFaultApply_GroupFlagErrors(t *testing.T) {
	t.Parallel()
	s, environ := startGroup(t)
	cpu := []string{"fault", "apply", "cpu", "--cores", "1", "--load", "50"}
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"--agent", "web-1", "--select", "role=web"}, ExitUsage, "--agent applies to one agent"},
		{[]string{"--select", "role=web", "--count", "2", "--percent", "10"}, ExitUsage, "--count and --percent exclude each other"},
		{[]string{"--agent", "web-1", "--count", "2"}, ExitUsage, "--count needs --select or --agents"},
		{[]string{"--agent", "web-1", "--dry-run"}, ExitUsage, "--dry-run needs --select or --agents"},
		{[]string{"--select", "role=web", "--percent", "150"}, ExitInvalid, "--percent must be in (0, 100], got 150"},
		{[]string{"--select", "role=web", "--count", "0"}, ExitInvalid, "--count must be at least 1"},
		{[]string{"--select", "role=web", "--count", "2", "--min", "3"}, ExitInvalid, "--min 3 is above --count 2"},
		{[]string{"--select", "role in (web"}, ExitInvalid, "--select: "},
	} {
		r := runCLI(t, environ, append(slices.Clone(cpu), tc.args...)...)
		r.check(t, tc.code, tc.msg)
	}
	if n := len(s.requests()); n != 0 {
		t.Errorf("the controller got %d requests, want none", n)
	}
}
