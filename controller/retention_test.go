package controller_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/controller"
	"github.com/turbulence-sre/turbulence/controller/controllertest"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// faultsSeen is a node's fault list as "id state" lines, sorted.
func faultsSeen(t *testing.T, client turbulencev1.ControlServiceClient) ([]string, error) {
	t.Helper()
	resp, err := client.ListFaults(t.Context(), &turbulencev1.ListFaultsRequest{PageSize: 50})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, f := range resp.GetFaults() {
		out = append(out, f.GetId()+" "+f.GetState().String())
	}
	slices.Sort(out)
	return out, nil
}

// TestCluster_RetentionBoundsStateOnEveryNode: with at most 5 ended faults
// kept, rounds of group faults applied and reverted leave 5 ended faults
// and the live one on the leader, the followers and a restarted node
// alike, and the ACTIVE fault made first, the oldest of all, stays.
func TestCluster_RetentionBoundsStateOnEveryNode(t *testing.T) {
	c := controllertest.NewCluster(t, 3, func(_ int, cfg *controller.Config) {
		cfg.Retention = controller.Retention{MaxEndedFaults: 5, Interval: time.Second}
		cfg.MaxGroupPercent = 100
	})
	leader := c.Leader()
	admin := leader.AdminClient(t)
	var ids []string
	for i := range 5 {
		id := fmt.Sprintf("web-%d", i)
		a, err := controllertest.StartFollowingAgent(id, c.Addrs(), leader.IssueCert(t, tlsutil.Identity{Role: tlsutil.RoleAgent, Name: id}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(a.Stop)
		ids = append(ids, id)
	}
	controllertest.WaitFor(t, 20*time.Second, "the agents to connect", func() bool {
		resp, err := admin.ApplyFaultGroup(t.Context(), &turbulencev1.ApplyFaultGroupRequest{Spec: cpuFault("").GetSpec(), AgentIds: ids, DryRun: true})
		return err == nil && resp.GetEligible() == 5
	})
	keep := cpuFault("keep")
	keep.AgentId = ids[4]
	live, err := admin.ApplyFault(t.Context(), keep)
	if err != nil {
		t.Fatal(err)
	}
	controllertest.WaitFor(t, 20*time.Second, "the first fault to be active", func() bool {
		f, err := admin.GetFault(t.Context(), &turbulencev1.GetFaultRequest{Id: live.GetId()})
		return err == nil && f.GetState() == turbulencev1.FaultState_FAULT_STATE_ACTIVE
	})
	for round := range 5 {
		g, err := admin.ApplyFaultGroup(t.Context(), &turbulencev1.ApplyFaultGroupRequest{
			RequestId: fmt.Sprintf("round-%d", round), Spec: cpuFault("").GetSpec(), AgentIds: ids[:4]})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if _, err := admin.RevertFaultGroup(t.Context(), &turbulencev1.RevertFaultGroupRequest{RequestId: fmt.Sprintf("revert-%d", round), Id: g.GetId()}); err != nil {
			t.Fatalf("round %d revert: %v", round, err)
		}
	}
	// 20 faults ended, 5 kept: on every node the same 6 faults, one of
	// them the live one.
	var want []string
	clients := map[*controllertest.Node]turbulencev1.ControlServiceClient{leader: admin}
	for _, n := range c.Followers() {
		clients[n] = n.AdminClient(t)
	}
	seen := map[string][]string{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("faults last seen by node: %q", seen)
		}
	})
	controllertest.WaitFor(t, 30*time.Second, "every node to hold 5 ended faults and the live one", func() bool {
		want = nil
		for n, client := range clients {
			got, err := faultsSeen(t, client)
			seen[n.Config.NodeID] = append(got, fmt.Sprint(err))
			if err != nil || len(got) != 6 || !slices.Contains(got, live.GetId()+" FAULT_STATE_ACTIVE") {
				return false
			}
			if want == nil {
				want = got
			} else if !slices.Equal(got, want) {
				return false
			}
		}
		return true
	})
	for _, line := range want {
		if line != live.GetId()+" FAULT_STATE_ACTIVE" && !strings.HasSuffix(line, " FAULT_STATE_REVERTED") {
			t.Errorf("kept fault %s: want the live one or REVERTED", line)
		}
	}
	groups, err := admin.ListFaultGroups(t.Context(), &turbulencev1.ListFaultGroupsRequest{})
	if err != nil || len(groups.GetGroups()) > 2 {
		t.Errorf("groups = %d, %v; want at most the 2 whose faults are kept", len(groups.GetGroups()), err)
	}
	audit, err := admin.ListAudit(t.Context(), &turbulencev1.ListAuditRequest{Action: "state.prune"})
	if err != nil || len(audit.GetEntries()) == 0 {
		t.Errorf("audit records of action state.prune = %v, %v; want at least one", audit.GetEntries(), err)
	}

	// A follower restarted from its own log and snapshots agrees.
	restarted := c.Followers()[0]
	if err := restarted.Stop(); err != nil {
		t.Fatal(err)
	}
	restarted.Start(t)
	client := restarted.AdminClient(t)
	controllertest.WaitFor(t, 20*time.Second, "the restarted node to agree", func() bool {
		got, err := faultsSeen(t, client)
		return err == nil && slices.Equal(got, want)
	})
}
