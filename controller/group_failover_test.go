package controller_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/turbulence-sre/turbulence/controller/controllertest"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// TestCluster_GroupRetryThroughFollowerAcrossFailoverMakesOneGroup applies
// a group through a follower, kills the leader at once and retries the
// same request through the other follower while the election runs: the
// retry is held, lands on the new leader and returns the first group.
func TestCluster_GroupRetryThroughFollowerAcrossFailoverMakesOneGroup(t *testing.T) {
	c := controllertest.NewCluster(t, 3, nil)
	old := c.Leader()
	var ids []string
	for i := range 4 {
		id := fmt.Sprintf("web-%d", i)
		a, err := controllertest.StartFollowingAgent(id, c.Addrs(), old.IssueCert(t, tlsutil.Identity{Role: tlsutil.RoleAgent, Name: id}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(a.Stop)
		ids = append(ids, id)
	}
	controllertest.WaitFor(t, 10*time.Second, "the agents to connect", func() bool {
		resp, err := old.AdminClient(t).ApplyFaultGroup(t.Context(), &turbulencev1.ApplyFaultGroupRequest{
			Spec: cpuFault("").GetSpec(), AgentIds: ids[:2], DryRun: true})
		return err == nil && resp.GetEligible() == 2
	})
	seed := uint64(9)
	req := &turbulencev1.ApplyFaultGroupRequest{
		RequestId: "grp-failover",
		Spec:      &turbulencev1.FaultSpec{Duration: durationpb.New(time.Minute), Kind: &turbulencev1.FaultSpec_Cpu{Cpu: &turbulencev1.CPUSpec{Cores: 1, LoadPercent: 10}}},
		AgentIds:  ids[:2],
		Seed:      &seed,
	}
	followers := c.Followers()
	first, err := followers[0].AdminClient(t).ApplyFaultGroup(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Crash(); err != nil {
		t.Fatalf("crash leader: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	again, err := followers[1].AdminClient(t).ApplyFaultGroup(ctx, req)
	if err != nil {
		t.Fatalf("retry during the election: %v", err)
	}
	if again.GetId() != first.GetId() {
		t.Errorf("retry made group %s, want the first, %s", again.GetId(), first.GetId())
	}
	leader := c.WaitLeader(t, failoverLimit)
	groups, err := leader.AdminClient(t).ListFaultGroups(t.Context(), &turbulencev1.ListFaultGroupsRequest{})
	if err != nil || len(groups.GetGroups()) != 1 {
		t.Errorf("groups on the new leader = %v, %v; want exactly one", groups, err)
	}
	faults, err := leader.AdminClient(t).ListFaults(t.Context(), &turbulencev1.ListFaultsRequest{})
	if err != nil || len(faults.GetFaults()) != 2 {
		t.Errorf("faults on the new leader = %d, %v; want 2", len(faults.GetFaults()), err)
	}
}
