package chaos

import (
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/internal/testutil"
)

// TestPrivilegedControllerCluster_AllDownAgentsRevert proves invariant 2
// at process level: with every controller gone (SIGKILL, all three at
// once), each agent reverts every fault it holds by itself, within the
// lease TTL plus one second of the kill — and not long before the lease
// ran out either, which would mean it reverted on losing its session,
// not on its lease. The figure is measured from the kill to the exit of
// each fault's worker process, seen on a pidfd.
func TestPrivilegedControllerCluster_AllDownAgentsRevert(t *testing.T) {
	testutil.RequirePrivileged(t)
	c := newProcCluster(t, 3)
	for _, n := range c.nodes {
		c.start(n)
	}
	leader := c.waitLeader(c.nodes, startLimit)
	agents := c.addAgents(2)
	c.waitAttached(leader, agents, startLimit)
	faults := c.applyAgentFaults(leader, agents, nil)
	c.checkFaultsRun(leader, faults)
	if t.Failed() {
		return
	}

	// Stop every controller at once: SIGKILL all, then wait for them.
	killed := time.Now()
	for _, n := range c.nodes {
		if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("kill %s: %v", n.id, err)
		}
	}
	for _, n := range c.nodes {
		<-n.exited
	}
	t.Logf("SIGKILL to all %d controllers; they were gone after %s", len(c.nodes), time.Since(killed).Round(time.Millisecond))

	var workers []*worker
	for _, af := range faults {
		workers = append(workers, af.worker)
	}
	limit := leaseTTL + time.Second
	exits := waitExits(workers, killed.Add(limit))
	var took []time.Duration
	for _, af := range faults {
		at, ok := exits[af.worker]
		if !ok {
			t.Errorf("%s still runs %s (worker %d) %s after every controller was killed: the lease (TTL %s) did not revert it", af.agent.name, af.id, af.worker.pid, limit, leaseTTL)
			continue
		}
		d := at.Sub(killed)
		took = append(took, d)
		t.Logf("%s reverted %s: worker %d exited %s after the controllers were killed (lease TTL %s)", af.agent.name, af.id, af.worker.pid, d.Round(time.Millisecond), leaseTTL)
		// The last renewal came with the last heartbeat, at most one
		// heartbeat interval (plus a little) before the kill.
		if early := leaseTTL - 2*heartbeatInterval; d < early {
			t.Errorf("%s reverted %s %s after the kill, before its lease could have run out (%s at the earliest)", af.agent.name, af.id, d, early)
		}
	}
	if len(took) > 0 {
		t.Logf("revert after all controllers down: max %s over %d faults on %d agents (limit: lease TTL + 1 s = %s)",
			slices.Max(took).Round(time.Millisecond), len(took), len(agents), limit)
	}

	// Each agent took its fault back, and says why: the lease.
	for _, af := range faults {
		var why string
		ok := poll(5*time.Second, func() bool {
			if _, err := agentHolds(af.agent, af.id); err == nil {
				why = "it still holds it"
				return false
			}
			for _, line := range af.agent.reverts() {
				if strings.Contains(line, "fault_id="+af.id) {
					why = line
					return strings.Contains(line, fmt.Sprintf("reason=%q", leaseReason))
				}
			}
			why = "its log records no revert of it"
			return false
		})
		if !ok {
			t.Errorf("%s and %s: %s; want reverted for %q", af.agent.name, af.id, why, leaseReason)
		}
	}
	// The agents themselves carry on, waiting for a controller.
	for _, a := range agents {
		select {
		case <-a.exited:
			t.Errorf("%s exited (%v) when it lost every controller", a.name, a.exitErr)
		default:
		}
	}
}
