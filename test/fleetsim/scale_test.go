//go:build !race

package fleetsim_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/controller"
	"github.com/turbulence-sre/turbulence/controller/controllertest"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
	"github.com/turbulence-sre/turbulence/test/fleetsim"
)

// This file is left out of -race builds: the race detector allows 8,128
// live goroutines, and a thousand simulated agents with their controller
// sessions hold about fifteen thousand. `make test` runs it in a plain
// build of its own (the Makefile's test target).

// scaleAgents is the fleet of the scale test (issue 15): large enough
// that the controller paces heartbeats, small enough for make test.
const scaleAgents = 1000

// scaleLimit bounds each wait of the scale test: generous for the
// shared 2-core machine, never a timing assertion.
const scaleLimit = 3 * time.Minute

// TestScale_ThousandAgentsStarvedController: a thousand agents attach
// and are paced to the controller's heartbeat rate; one group apply
// reaches every one of them; the machine is then starved of CPU for
// longer than a lease by a load of the test's own, and no agent's lease
// runs out and the controller records nothing UNCONFIRMED (overload
// costs time, never a fault); a halt then reaches every agent, and the
// controller records every fault ended.
func TestScale_ThousandAgentsStarvedController(t *testing.T) {
	const lease = 6 * time.Second
	srv := controllertest.NewServer(t, func(c *controller.Config) {
		c.Logger = warnLogger(t)
		c.LeaseTTL = lease
		// 1,000 agents at 500 heartbeats a second: 2 s each, the third
		// of the lease.
		c.MaxHeartbeatRate = 500
		c.MaxGroupPercent, c.MaxGroupAgents = 100, scaleAgents
	})
	f := startFleet(t, srv, scaleAgents, scaleLimit)
	if got := srv.Controller.HeartbeatInterval(); got != 2*time.Second {
		t.Errorf("heartbeat interval told to %d agents = %v, want 2s (500 heartbeats a second)", scaleAgents, got)
	}
	admin := srv.AdminClient(t)
	agents := f.Agents()

	group, err := admin.ApplyFaultGroup(t.Context(), &turbulencev1.ApplyFaultGroupRequest{
		RequestId: "scale-group", Spec: cpuSpec(10 * time.Minute), Selector: "fleet=sim", Count: scaleAgents,
	})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range group.GetMembers() {
		if m.GetRefusal() != "" {
			t.Fatalf("group refused agent %s: %s", m.GetAgentId(), m.GetRefusal())
		}
		ids = append(ids, m.GetFaultId())
	}
	if len(ids) != scaleAgents {
		t.Fatalf("group chose %d agents, want all %d", len(ids), scaleAgents)
	}
	ctx, cancel := context.WithTimeout(t.Context(), scaleLimit)
	defer cancel()
	if err := f.WaitApplied(ctx, ids...); err != nil {
		t.Fatal(err)
	}
	reached := map[string]int{}
	for _, id := range ids {
		rc, _ := f.Receipt(id)
		reached[rc.AgentID]++
	}
	for _, a := range agents {
		if reached[a.ID()] != 1 {
			t.Errorf("agent %s got %d of the group's faults, want 1", a.ID(), reached[a.ID()])
		}
	}

	starve(3*runtime.GOMAXPROCS(0), 2*lease)

	if n := f.LeaseExpiries(); n != 0 {
		t.Errorf("%d lease expiries while the machine was starved, want 0: overload must slow the controller, never revert", n)
	}
	for _, a := range agents {
		for _, st := range a.Faults() {
			if st.GetState() != turbulencev1.FaultState_FAULT_STATE_ACTIVE {
				t.Errorf("agent %s holds %s %s (%s) after the starvation, want ACTIVE", a.ID(), st.GetFaultId(), st.GetState(), st.GetReason())
			}
		}
	}
	if n := countFaults(t, admin, turbulencev1.FaultState_FAULT_STATE_UNCONFIRMED); n != 0 {
		t.Errorf("controller recorded %d faults UNCONFIRMED while every agent was attached, want 0", n)
	}

	if _, err := admin.Halt(t.Context(), &turbulencev1.HaltRequest{RequestId: "scale-halt", Reason: "scale test"}); err != nil {
		t.Fatal(err)
	}
	if err := f.WaitReverted(ctx, ids...); err != nil {
		t.Fatal(err)
	}
	controllertest.WaitFor(t, scaleLimit, "every agent halted", func() bool {
		return !slices.ContainsFunc(agents, func(a *fleetsim.Agent) bool { return !a.Halted() })
	})
	controllertest.WaitFor(t, scaleLimit, "every fault recorded ended", func() bool {
		return countFaults(t, admin, turbulencev1.FaultState_FAULT_STATE_REVERTED) == scaleAgents
	})
}

// starve keeps n goroutines of the test busy for d: the machine's cores
// shared with the controller and the fleet, several times over.
func starve(n int, d time.Duration) {
	until := time.Now().Add(d)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			x := 0
			for time.Now().Before(until) {
				for i := range 100_000 {
					x += i
				}
			}
			_ = fmt.Sprint(x)
		})
	}
	wg.Wait()
}

// countFaults counts the faults the controller lists in state st.
func countFaults(t *testing.T, c turbulencev1.ControlServiceClient, st turbulencev1.FaultState) int {
	t.Helper()
	n := 0
	req := &turbulencev1.ListFaultsRequest{}
	for {
		resp, err := c.ListFaults(t.Context(), req)
		if err != nil {
			t.Fatalf("ListFaults: %v", err)
		}
		for _, f := range resp.GetFaults() {
			if f.GetState() == st {
				n++
			}
		}
		if resp.GetNextPageToken() == "" {
			return n
		}
		req.PageToken = resp.GetNextPageToken()
	}
}
