package e2e

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/agent"
	"github.com/turbulence-sre/turbulence/controller"
	"github.com/turbulence-sre/turbulence/controller/cli"
	"github.com/turbulence-sre/turbulence/controller/controllertest"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Failover timings: the lease is long enough to cover an election with
// controllertest.FastRaft (well under a second here) plus the agent's
// reconnect backoff, and short enough that a missed renewal would show.
const (
	failoverLease     = 4 * time.Second
	failoverHeartbeat = 200 * time.Millisecond
)

// clusterFleet is a 3-node controller cluster and one real agent that
// knows every controller's address.
type clusterFleet struct {
	cluster *controllertest.Cluster
	agent   *agent.Agent
}

func startClusterFleet(t *testing.T) *clusterFleet {
	t.Helper()
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("workers and their measurement need Linux /proc")
	}
	c := controllertest.NewCluster(t, 3, func(_ int, cfg *controller.Config) {
		cfg.LeaseTTL = failoverLease
		cfg.HeartbeatInterval = failoverHeartbeat
	})
	a := runAgent(t, c.Addrs(), c.PKI.Agent)
	f := &clusterFleet{cluster: c, agent: a}
	f.waitAttached(t, c.Leader())
	return f
}

// waitAttached waits until the agent holds a session with leader.
func (f *clusterFleet) waitAttached(t *testing.T, leader *controllertest.Node) {
	t.Helper()
	controllertest.WaitFor(t, 15*time.Second, "the agent to attach to "+leader.Config.NodeID, func() bool {
		return leader.Controller.ConnectedAgents() == 1
	})
}

// turbctl runs the CLI against node with the admin certificate.
func (f *clusterFleet) turbctl(t *testing.T, node *controllertest.Node, args ...string) (int, string, string) {
	t.Helper()
	admin := f.cluster.PKI.Admin
	global := []string{"--controller", node.Addr, "--ca", admin.CA, "--cert", admin.Cert, "--key", admin.Key}
	var out, errOut bytes.Buffer
	code := cli.Main(append(global, args...), &out, &errOut)
	return code, strings.TrimSpace(out.String()), errOut.String()
}

func (f *clusterFleet) held(id string) *turbulencev1.FaultStatus {
	for _, st := range f.agent.Faults() {
		if st.GetFaultId() == id {
			return st
		}
	}
	return nil
}

// Invariant 2 across a leader change: the agent follows the new leader,
// its CPU fault keeps running (same worker, lease renewed) and nothing is
// reverted, neither on the agent nor in the controllers' record.
func TestFailover_AgentFollowsNewLeaderAndKeepsItsFault(t *testing.T) {
	f := startClusterFleet(t)
	old := f.cluster.Leader()
	follower := f.cluster.Followers()[0]

	// Applied through a follower with turbctl: forwarded to the leader.
	code, id, stderr := f.turbctl(t, follower, "fault", "apply", "cpu", "--agent", f.agent.ID(),
		"--cores", "1", "--load", "20", "--duration", "2m")
	if code != cli.ExitOK || id == "" {
		t.Fatalf("turbctl fault apply via follower: exit %d, id %q, stderr:\n%s", code, id, stderr)
	}
	var pid int32
	controllertest.WaitFor(t, waitLong, "the worker of "+id+" to run", func() bool {
		st := f.held(id)
		pid = st.GetWorkerPid()
		return st.GetState() == stateActive && pid > 0
	})
	controllertest.WaitFor(t, waitLong, "the controller to see "+id+" active", func() bool {
		flt, err := old.AdminClient(t).GetFault(t.Context(), &turbulencev1.GetFaultRequest{Id: id})
		return err == nil && flt.GetState() == stateActive
	})

	// Watch the agent's own view of the fault for the whole failover.
	watchCtx, stopWatch := context.WithCancel(t.Context())
	watchDone := make(chan string, 1)
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-watchCtx.Done():
				watchDone <- ""
				return
			case <-tick.C:
				if st := f.held(id); st.GetState() != stateActive || st.GetWorkerPid() != pid {
					watchDone <- "agent's fault became " + st.String()
					return
				}
			}
		}
	}()

	start := time.Now()
	if err := old.Stop(); err != nil {
		t.Fatalf("stop the leader: %v", err)
	}
	nl := f.cluster.WaitLeader(t, 10*time.Second)
	elected := time.Since(start)
	f.waitAttached(t, nl)
	attached := time.Since(start)
	t.Logf("leader %s stopped; %s elected after %s; agent attached after %s", old.Config.NodeID, nl.Config.NodeID, elected, attached)
	if attached >= failoverLease {
		t.Errorf("agent re-attached after %s, not within the lease TTL %s", attached, failoverLease)
	}

	// A few lease periods on the new leader: renewals keep the fault.
	api := nl.AdminClient(t)
	deadline := time.Now().Add(failoverLease + time.Second)
	controllertest.WaitFor(t, 2*failoverLease, "a lease TTL to pass on the new leader", func() bool { return time.Now().After(deadline) })
	stopWatch()
	if msg := <-watchDone; msg != "" {
		t.Fatalf("invariant 2 broken during failover: %s", msg)
	}
	if !alive(pid) {
		t.Fatalf("worker %d died during failover", pid)
	}
	flt, err := api.GetFault(t.Context(), &turbulencev1.GetFaultRequest{Id: id})
	if err != nil || flt.GetState() != stateActive {
		t.Fatalf("fault on the new leader = %v, %v; want ACTIVE", flt.GetState(), err)
	}
	evs, err := api.ListEvents(t.Context(), &turbulencev1.ListEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs.GetEvents() {
		if ev.GetFaultId() == id && ev.GetType() == "fault.reverted" {
			t.Errorf("fault reverted during failover: %v", ev)
		}
	}

	// turbctl through any node lists the membership and the new leader.
	code, out, stderr := f.turbctl(t, nl, "cluster", "ls")
	if code != cli.ExitOK || !strings.Contains(out, nl.Config.NodeID) {
		t.Errorf("turbctl cluster ls: exit %d\n%s\n%s", code, out, stderr)
	}
}

// Invariant 5 across a leader crash, end to end: a halt acknowledged just
// before the leader dies is carried out by the agent and kept by the new
// leader, which refuses new faults.
func TestFailover_HaltBeforeLeaderCrashIsHonoured(t *testing.T) {
	f := startClusterFleet(t)
	old := f.cluster.Leader()
	code, id, stderr := f.turbctl(t, old, "fault", "apply", "cpu", "--agent", f.agent.ID(),
		"--cores", "1", "--load", "20", "--duration", "2m")
	if code != cli.ExitOK {
		t.Fatalf("apply: exit %d: %s", code, stderr)
	}
	controllertest.WaitFor(t, waitLong, "the fault to run", func() bool { return f.held(id).GetState() == stateActive })

	if code, _, stderr := f.turbctl(t, f.cluster.Followers()[0], "halt", "--reason", "last words"); code != cli.ExitOK {
		t.Fatalf("halt via follower: exit %d: %s", code, stderr)
	}
	if err := old.Stop(); err != nil {
		t.Fatal(err)
	}
	nl := f.cluster.WaitLeader(t, 10*time.Second)
	controllertest.WaitFor(t, waitLong, "the agent to revert the fault", func() bool {
		st := f.held(id)
		return st == nil || st.GetState() == stateReverted
	})
	controllertest.WaitFor(t, waitLong, "the new leader to record the revert", func() bool {
		flt, err := nl.AdminClient(t).GetFault(t.Context(), &turbulencev1.GetFaultRequest{Id: id})
		return err == nil && flt.GetState() == stateReverted
	})
	// The refusal must be the halt's, not any failure: exit 5 (refused)
	// with the halt's own message, naming who halted, why, and the way
	// out. An unavailable or invalid answer would exit 6 or 3.
	code, _, stderr = f.turbctl(t, nl, "fault", "apply", "cpu", "--agent", f.agent.ID(), "--cores", "1", "--load", "20", "--duration", "1m")
	if code != cli.ExitRefused {
		t.Errorf("apply after failover while halted: exit %d, want %d (refused); stderr %s", code, cli.ExitRefused, stderr)
	}
	for _, want := range []string{"the fleet was halted by admin/", "(last words)", "no new faults until `turbctl resume`"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("apply after failover while halted: stderr %q does not contain %q", stderr, want)
		}
	}
	list, err := nl.AdminClient(t).ListFaults(t.Context(), &turbulencev1.ListFaultsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(list.GetFaults()); n != 1 {
		t.Errorf("faults after the refused apply = %d, want 1 (the refusal changed something)", n)
	}
}
