package controlapi_test

import (
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/turbulence-sre/turbulence/controller/controllertest"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// webFleet connects web-1…web-3 (role=web), web-4 (role=web, locally
// halted) and db-1 (role=db), all supporting cpu.
func webFleet(t *testing.T, srv *controllertest.Server) map[string]*controllertest.FakeAgent {
	t.Helper()
	agents := map[string]*controllertest.FakeAgent{}
	for _, h := range []*turbulencev1.Hello{
		{AgentId: "web-1", Labels: map[string]string{"role": "web"}},
		{AgentId: "web-2", Labels: map[string]string{"role": "web"}},
		{AgentId: "web-3", Labels: map[string]string{"role": "web"}},
		{AgentId: "web-4", Labels: map[string]string{"role": "web"}, LocallyHalted: true},
		{AgentId: "db-1", Labels: map[string]string{"role": "db"}},
	} {
		agents[h.GetAgentId()] = srv.ConnectAgent(t, h)
	}
	return agents
}

func auditCount(t *testing.T, admin turbulencev1.ControlServiceClient, action string) int {
	t.Helper()
	resp, err := admin.ListAudit(t.Context(), &turbulencev1.ListAuditRequest{Action: action})
	if err != nil {
		t.Fatal(err)
	}
	return len(resp.GetEntries())
}

func chosenIDs(g *turbulencev1.FaultGroup) []string {
	var out []string
	for _, m := range g.GetMembers() {
		if m.GetRefusal() == "" {
			out = append(out, m.GetAgentId())
		}
	}
	return out
}

func TestFaultGroup_DryRunThenApplyThenRevert(t *testing.T) {
	srv := controllertest.NewServer(t, nil)
	agents := webFleet(t, srv)
	admin := srv.AdminClient(t)
	ctx := t.Context()
	seed := uint64(5)
	req := &turbulencev1.ApplyFaultGroupRequest{RequestId: "grp-1", Spec: cpuSpec(40, durationpb.New(time.Minute)), Selector: "role=web", Count: 2, Seed: &seed}

	// Dry run: the same choice, and nothing written.
	dry := proto.CloneOf(req)
	dry.DryRun = true
	before, audits := srv.Controller.LastRaftIndex(), auditCount(t, admin, "")
	plan, err := admin.ApplyFaultGroup(ctx, dry)
	if err != nil {
		t.Fatal(err)
	}
	if after := srv.Controller.LastRaftIndex(); after != before {
		t.Errorf("dry run moved the raft index from %d to %d", before, after)
	}
	if n := auditCount(t, admin, ""); n != audits {
		t.Errorf("dry run wrote audit entries: %d, then %d", audits, n)
	}
	if !plan.GetDryRun() || plan.GetId() != "" || plan.GetChosen() != 2 || plan.GetMatched() != 4 || plan.GetEligible() != 3 {
		t.Errorf("plan = %v, want a dry run choosing 2 of 3 eligible, 4 matched", plan)
	}
	if m := plan.GetMembers()[len(plan.GetMembers())-1]; m.GetAgentId() != "web-4" || m.GetRefusal() != "locally halted" {
		t.Errorf("last member = %v, want web-4 refused as locally halted", m)
	}

	g, err := admin.ApplyFaultGroup(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(chosenIDs(g), chosenIDs(plan)) {
		t.Errorf("applied %v, the dry run with the same seed planned %v", chosenIDs(g), chosenIDs(plan))
	}
	for _, id := range chosenIDs(g) {
		f := agents[id].Next(t, 10*time.Second).GetApply().GetFault()
		if f.GetGroupId() != g.GetId() || f.GetAgentId() != id {
			t.Errorf("agent %s got %v, want its fault of group %s", id, f, g.GetId())
		}
	}
	if n := auditCount(t, admin, "fault.group.apply"); n != 1 {
		t.Errorf("fault.group.apply audit entries = %d, want 1", n)
	}
	// A retry is the same group, never a second one.
	again, err := admin.ApplyFaultGroup(ctx, req)
	if err != nil || again.GetId() != g.GetId() {
		t.Errorf("retry = %v, %v; want group %s", again.GetId(), err, g.GetId())
	}
	faults, err := admin.ListFaults(ctx, &turbulencev1.ListFaultsRequest{})
	if err != nil || len(faults.GetFaults()) != 2 {
		t.Fatalf("faults = %v, %v; want 2", faults, err)
	}
	list, err := admin.ListFaultGroups(ctx, &turbulencev1.ListFaultGroupsRequest{})
	if err != nil || len(list.GetGroups()) != 1 || list.GetGroups()[0].GetLive() != 2 {
		t.Errorf("groups = %v, %v; want one with 2 live members", list, err)
	}

	reverted, err := admin.RevertFaultGroup(ctx, &turbulencev1.RevertFaultGroupRequest{Id: g.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range reverted.GetMembers() {
		if m.GetRefusal() == "" && m.GetState() != turbulencev1.FaultState_FAULT_STATE_REVERTING {
			t.Errorf("member %s = %s after the group revert, want REVERTING", m.GetAgentId(), m.GetState())
		}
	}
	for _, id := range chosenIDs(g) {
		if r := agents[id].Next(t, 10*time.Second).GetRevert(); r.GetFaultId() == "" {
			t.Errorf("agent %s got no revert", id)
		}
	}
	if n := auditCount(t, admin, "fault.group.revert"); n != 1 {
		t.Errorf("fault.group.revert audit entries = %d, want 1", n)
	}
}

func TestFaultGroup_RefusalsChangeNothing(t *testing.T) {
	srv := controllertest.NewServer(t, nil)
	webFleet(t, srv)
	admin := srv.AdminClient(t)
	spec := cpuSpec(40, durationpb.New(time.Minute))
	for _, tc := range []struct {
		name string
		req  *turbulencev1.ApplyFaultGroupRequest
		code codes.Code
		msg  string
	}{
		{"min unmet", &turbulencev1.ApplyFaultGroupRequest{Spec: spec, AgentIds: []string{"web-1", "web-4"}, Min: 2}, codes.FailedPrecondition,
			"min: 2 agents required, 1 would be chosen (2 matched, 1 eligible; 1 locally halted)"},
		{"nothing matches", &turbulencev1.ApplyFaultGroupRequest{Spec: spec, Selector: "role=cache"}, codes.FailedPrecondition, "min: 1 agents required, 0 would be chosen"},
		// 5 registered, --max-group-percent 50: at most 2.
		{"count above the cap", &turbulencev1.ApplyFaultGroupRequest{Spec: spec, Selector: "role=web", Count: 3}, codes.InvalidArgument,
			"count: the call would choose 3 agents, above the controller's cap of 2"},
		{"explicit list above the cap", &turbulencev1.ApplyFaultGroupRequest{Spec: spec, AgentIds: []string{"web-1", "web-2", "web-3"}}, codes.InvalidArgument, "agent_ids: "},
		{"count and percent", &turbulencev1.ApplyFaultGroupRequest{Spec: spec, Count: 1, Percent: 10}, codes.InvalidArgument, "percent: give count or percent, not both"},
		{"percent out of range", &turbulencev1.ApplyFaultGroupRequest{Spec: spec, Percent: 101}, codes.InvalidArgument, "percent: 101 is not in (0, 100]"},
		{"bad selector", &turbulencev1.ApplyFaultGroupRequest{Spec: spec, Selector: "role in (web"}, codes.InvalidArgument, "selector: "},
		{"bad spec", &turbulencev1.ApplyFaultGroupRequest{Spec: cpuSpec(150, nil), Selector: "role=web", Count: 1}, codes.InvalidArgument, "spec.cpu.load_percent"},
		{"min above count", &turbulencev1.ApplyFaultGroupRequest{Spec: spec, Count: 1, Min: 2}, codes.InvalidArgument, "min: 2 is above count 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := srv.Controller.LastRaftIndex()
			_, err := admin.ApplyFaultGroup(t.Context(), tc.req)
			wantCode(t, err, tc.code, tc.msg)
			if after := srv.Controller.LastRaftIndex(); after != before {
				t.Errorf("raft last index moved from %d to %d", before, after)
			}
		})
	}
	list, err := admin.ListFaultGroups(t.Context(), &turbulencev1.ListFaultGroupsRequest{})
	if err != nil || len(list.GetGroups()) != 0 {
		t.Errorf("groups = %v, %v; want none", list, err)
	}
}

// TestFaultGroup_AgentRefusalIsPerAgent: one chosen agent refuses its
// member at dispatch (its local policy); that member alone is FAILED with
// the agent's words, the other stays, and the group reports both.
func TestFaultGroup_AgentRefusalIsPerAgent(t *testing.T) {
	srv := controllertest.NewServer(t, nil)
	agents := webFleet(t, srv)
	admin := srv.AdminClient(t)
	g, err := admin.ApplyFaultGroup(t.Context(), &turbulencev1.ApplyFaultGroupRequest{
		Spec: cpuSpec(40, durationpb.New(time.Minute)), AgentIds: []string{"web-1", "web-2"}})
	if err != nil {
		t.Fatal(err)
	}
	cmd := agents["web-2"].Next(t, 10*time.Second).GetApply()
	const refusal = "policy: cpu load above this host's ceiling of 30%"
	agents["web-2"].Send(t, &turbulencev1.AgentMessage{Msg: &turbulencev1.AgentMessage_Result{Result: &turbulencev1.CommandResult{
		CommandId: cmd.GetCommandId(), FaultId: cmd.GetFault().GetId(), Error: refusal}}})
	var got *turbulencev1.FaultGroup
	controllertest.WaitFor(t, 10*time.Second, "web-2's member to fail", func() bool {
		got, err = admin.GetFaultGroup(t.Context(), &turbulencev1.GetFaultGroupRequest{Id: g.GetId()})
		return err == nil && got.GetMembers()[1].GetState() == turbulencev1.FaultState_FAULT_STATE_FAILED
	})
	if m := got.GetMembers()[1]; m.GetAgentId() != "web-2" || m.GetReason() != refusal {
		t.Errorf("web-2 member = %v, want FAILED with %q", m, refusal)
	}
	if m := got.GetMembers()[0]; m.GetAgentId() != "web-1" || m.GetState() != turbulencev1.FaultState_FAULT_STATE_PENDING {
		t.Errorf("web-1 member = %v, want still PENDING", m)
	}
	// A second group, and the list read one group a page.
	second, err := admin.ApplyFaultGroup(t.Context(), &turbulencev1.ApplyFaultGroupRequest{
		Spec: cpuSpec(40, durationpb.New(time.Minute)), AgentIds: []string{"web-3"}})
	if err != nil {
		t.Fatal(err)
	}
	list, err := admin.ListFaultGroups(t.Context(), &turbulencev1.ListFaultGroupsRequest{PageSize: 1})
	if err != nil || len(list.GetGroups()) != 1 || list.GetGroups()[0].GetFailed() != 1 || list.GetGroups()[0].GetLive() != 1 || list.GetNextPageToken() == "" {
		t.Fatalf("first page = %v, %v; want the first group (1 failed, 1 live) and a token", list, err)
	}
	next, err := admin.ListFaultGroups(t.Context(), &turbulencev1.ListFaultGroupsRequest{PageSize: 1, PageToken: list.GetNextPageToken()})
	if err != nil || len(next.GetGroups()) != 1 || next.GetGroups()[0].GetId() != second.GetId() || next.GetNextPageToken() != "" {
		t.Errorf("second page = %v, %v; want %s alone", next, err, second.GetId())
	}
	if _, err := admin.ListFaultGroups(t.Context(), &turbulencev1.ListFaultGroupsRequest{PageSize: 21}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("page size 21 = %v, want InvalidArgument", err)
	}
}
