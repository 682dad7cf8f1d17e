package e2e

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/turbulence-sre/turbulence/agent"
	"github.com/turbulence-sre/turbulence/agent/killswitch"
	"github.com/turbulence-sre/turbulence/controller/controllertest"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

const (
	// revertBudget is what the lease's expiry may take to end a fault:
	// the issue's "lease TTL + 1 s". It covers SIGTERM to the worker, its
	// exit and reaping, and the journal's fsync, on a loaded 2-CPU
	// machine under -race (measured: tens of milliseconds).
	revertBudget = time.Second
	// gonePoll is how often the test looks for the workers; it is the
	// test's own measurement granularity and is added to the bound.
	gonePoll = 5 * time.Millisecond
)

// startExtraAgent starts one more real agent, named name, that knows
// every controller of f.
func (f *clusterFleet) startExtraAgent(t *testing.T, name string) *agent.Agent {
	t.Helper()
	leader := f.cluster.Leader()
	files := leader.IssueCert(t, tlsutil.Identity{Role: tlsutil.RoleAgent, Name: name})
	a := runAgent(t, f.cluster.Addrs(), files, func(c *agent.Config) {
		c.Logger = c.Logger.With("agent", name)
	})
	return a
}

// heldBy returns agent a's own status of fault id, or nil.
func heldBy(a *agent.Agent, id string) *turbulencev1.FaultStatus {
	for _, st := range a.Faults() {
		if st.GetFaultId() == id {
			return st
		}
	}
	return nil
}

// Invariant 2, the other half: with every controller gone, nobody renews
// the leases, and every agent reverts every fault by itself within the
// lease TTL (+ 1 s to carry the revert out), without a word from anyone.
func TestClusterDown_EveryAgentRevertsWithinLeaseTTL(t *testing.T) {
	f := startClusterFleet(t)
	agents := []*agent.Agent{f.agent, f.startExtraAgent(t, "agent-2"), f.startExtraAgent(t, "agent-3")}
	leader := f.cluster.Leader()
	controllertest.WaitFor(t, 15*time.Second, "three agents attached to the leader", func() bool {
		return leader.Controller.ConnectedAgents() == len(agents)
	})
	api := leader.AdminClient(t)
	ids := make([]string, len(agents))
	pids := make([]int32, len(agents))
	for i, a := range agents {
		flt, err := api.ApplyFault(t.Context(), &turbulencev1.ApplyFaultRequest{
			RequestId: fmt.Sprintf("down-%d", i),
			AgentId:   a.ID(),
			Spec: &turbulencev1.FaultSpec{
				Duration: durationpb.New(2 * time.Minute),
				Kind:     &turbulencev1.FaultSpec_Cpu{Cpu: &turbulencev1.CPUSpec{Cores: 1, LoadPercent: 10}},
			},
		})
		if err != nil {
			t.Fatalf("apply a CPU fault on %s: %v", a.ID(), err)
		}
		ids[i] = flt.GetId()
	}
	for i, a := range agents {
		controllertest.WaitFor(t, waitLong, "the worker of "+ids[i]+" on "+a.ID(), func() bool {
			st := heldBy(a, ids[i])
			pids[i] = st.GetWorkerPid()
			return st.GetState() == stateActive && pids[i] > 0
		})
	}

	// Stop all three controllers at once (as a power cut of the control
	// plane would), so that no new leader is elected to renew anything.
	t0 := time.Now()
	var wg sync.WaitGroup
	for _, nd := range f.cluster.Nodes {
		wg.Go(func() {
			if err := nd.Stop(); err != nil {
				t.Errorf("stop %s: %v", nd.Config.NodeID, err)
			}
		})
	}
	wg.Wait()
	stopped := time.Now()

	gone := make([]time.Time, len(agents))
	controllertest.WaitFor(t, failoverLease+10*time.Second, "every worker to be gone", func() bool {
		all := true
		for i, pid := range pids {
			if gone[i].IsZero() && !alive(pid) {
				gone[i] = time.Now()
			}
			all = all && !gone[i].IsZero()
		}
		return all
	})

	// The agent's watchdog is a timer re-armed by every message from the
	// leader (a LeaseRenewal answers each heartbeat, every
	// failoverHeartbeat), so it fires exactly one TTL after the last
	// renewal. That renewal arrived no later than the moment the
	// controllers were all stopped (the leader's first shutdown step ends
	// the agent sessions; a follower's Redirect renews nothing) and no
	// earlier than one heartbeat before t0. Hence:
	//   upper: gone ≤ stopped + TTL + revertBudget (+ our poll interval);
	//   lower: gone ≥ t0 + TTL − heartbeat — a revert much earlier than
	//          that would mean the agent reacted to the lost stream and
	//          not to the lease, breaking "a leader change shorter than
	//          the TTL reverts nothing". The lower bound is given a
	//          further second, so a heartbeat delayed by a loaded machine
	//          cannot fail the test, while a stream-loss revert (≈ 0 s
	//          after t0) still would.
	upper := failoverLease + revertBudget + gonePoll
	lower := failoverLease - failoverHeartbeat - time.Second
	t.Logf("controllers stopped in %s; lease TTL %s", stopped.Sub(t0).Round(time.Millisecond), failoverLease)
	for i, a := range agents {
		fromStop, fromT0 := gone[i].Sub(stopped), gone[i].Sub(t0)
		t.Logf("%s: worker %d gone %s after the last controller stopped (%s after the stop began)",
			a.ID(), pids[i], fromStop.Round(time.Millisecond), fromT0.Round(time.Millisecond))
		if fromStop > upper {
			t.Errorf("%s: worker outlived its controllers by %s, want ≤ lease TTL %s + %s (+ %s poll)", a.ID(), fromStop, failoverLease, revertBudget, gonePoll)
		}
		if fromT0 < lower {
			t.Errorf("%s: worker gone %s after the stop began, before the lease could expire (≥ %s): reverted on stream loss?", a.ID(), fromT0, lower)
		}
		controllertest.WaitFor(t, 5*time.Second, "the agent to record the revert of "+ids[i], func() bool {
			st := heldBy(a, ids[i])
			return st == nil || st.GetState() == stateReverted
		})
		if st := heldBy(a, ids[i]); st != nil && st.GetReason() != killswitch.Reason {
			t.Errorf("%s: fault %s ended with reason %q, want %q", a.ID(), ids[i], st.GetReason(), killswitch.Reason)
		}
	}
}
