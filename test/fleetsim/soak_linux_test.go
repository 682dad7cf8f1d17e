package fleetsim_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/turbulence-sre/turbulence/controller/controllertest"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
	"github.com/turbulence-sre/turbulence/test/fleetsim"
	"github.com/turbulence-sre/turbulence/test/internal/testbuild"
)

// BenchmarkFleetSoak is issue 15's soak: FLEETSIM_SOAK long (10m for
// the issue), a fleet of FLEETSIM_AGENTS simulated agents (the first
// size given, 10,000 when unset) idles on the cluster of BenchmarkFleet
// (FLEETSIM_NODES, FLEETSIM_RAFT_ELECTION_TIMEOUT, FLEETSIM_LEASE_TTL)
// while one real turbulence-agent on this machine runs a CPU fault of
// our own that loads every core at 100 % for the whole soak: the
// controllers and the fleet are starved by Turbulence itself. It
// reports:
//
//   - soak-lease-expiries: lease expiries in the fleet during the soak,
//     each a false revert (the target is 0);
//   - soak-reconnects: sessions the fleet had to open again;
//   - soak-ctrl-cpu-% and soak-loadavg-1m: the leader's CPU and the
//     machine's load over the soak, and soak-fault-cpu-% the load the
//     CPU fault's worker measured, to show the machine was saturated.
//
// Without FLEETSIM_SOAK it is skipped: it is not part of make bench's
// default run (ten minutes at the least).
func BenchmarkFleetSoak(b *testing.B) {
	v := os.Getenv("FLEETSIM_SOAK")
	if v == "" {
		b.Skip("FLEETSIM_SOAK is not set (e.g. FLEETSIM_SOAK=10m)")
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < time.Minute {
		b.Fatalf("FLEETSIM_SOAK: %q is not a duration of a minute or more", v)
	}
	n := 10000
	if sizes := os.Getenv("FLEETSIM_AGENTS"); sizes != "" {
		first, _, _ := strings.Cut(sizes, ",")
		if n, err = strconv.Atoi(strings.TrimSpace(first)); err != nil || n < 1 || n > fleetsim.MaxAgents {
			b.Fatalf("FLEETSIM_AGENTS: %q is not a fleet size from 1 to %d", first, fleetsim.MaxAgents)
		}
	}
	bins := testbuild.BuildBinaries(b, b.TempDir(), "./controller/cmd/turbulence-controller", "./agent/cmd/turbulence-agent")
	b.Run(fmt.Sprintf("nodes=%d/agents=%d/soak=%s", benchNodes(b), n, d), func(b *testing.B) {
		for b.Loop() {
			soakFleet(b, bins[0], bins[1], n, d)
		}
		b.ReportMetric(0, "ns/op")
	})
}

func soakFleet(b *testing.B, ctrlBin, agentBin string, n int, d time.Duration) {
	ctx, cancel := context.WithTimeout(b.Context(), d+benchLimit+time.Duration(n)*benchPerAgent)
	defer cancel()
	ctrl := startControllerProcess(b, ctrlBin)
	f, err := fleetsim.Start(ctx, fleetsim.Config{
		Controllers: ctrl.addrs, CA: ctrl.ca, CAFile: ctrl.admin.CA, N: n,
		Logger: fleetLogger(b),
	})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := f.WaitAttached(ctx); err != nil {
		b.Fatal(err)
	}
	if len(ctrl.cmds) > 1 {
		ctrl.findLeader(b)
	}
	admin := ctrl.client(b, ctrl.admin, "")

	burner, exited := startRealAgent(b, ctrl, agentBin, "soak-burner")
	controllertest.WaitFor(b, 2*time.Minute, "the real agent to attach", func() bool {
		select {
		case <-exited:
			b.Fatal("the real agent exited before it attached")
		default:
		}
		a, err := admin.GetAgent(ctx, &turbulencev1.GetAgentRequest{Id: burner})
		return err == nil && a.GetConnected()
	})
	fault, err := admin.ApplyFault(ctx, &turbulencev1.ApplyFaultRequest{
		RequestId: fmt.Sprintf("soak-%d", time.Now().UnixNano()), AgentId: burner,
		Spec: &turbulencev1.FaultSpec{
			Duration: durationpb.New(d + time.Minute),
			Kind:     &turbulencev1.FaultSpec_Cpu{Cpu: &turbulencev1.CPUSpec{Cores: 0, LoadPercent: 100}},
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	controllertest.WaitFor(b, time.Minute, "the CPU fault active", func() bool {
		got, err := admin.GetFault(ctx, &turbulencev1.GetFaultRequest{Id: fault.GetId()})
		return err == nil && got.GetState() == turbulencev1.FaultState_FAULT_STATE_ACTIVE
	})

	expired, reconnects := f.LeaseExpiries(), f.Reconnects()
	before := ctrl.sample(b)
	measureFor(d)
	after := ctrl.sample(b)
	report(b, float64(f.LeaseExpiries()-expired), "soak-lease-expiries")
	report(b, float64(f.Reconnects()-reconnects), "soak-reconnects")
	report(b, after.cpuPercent(before), "soak-ctrl-cpu-%")
	report(b, loadAverage(b), "soak-loadavg-1m")
	if got, err := admin.GetFault(ctx, &turbulencev1.GetFaultRequest{Id: fault.GetId()}); err == nil {
		// The load the fault's worker measured on the host (all cores,
		// in % of one): what the fleet was starved by.
		report(b, got.GetStatus().GetMeasuredCpuPercent(), "soak-fault-cpu-%")
	}
	report(b, float64(n), "agents")

	if _, err := admin.RevertFault(ctx, &turbulencev1.RevertFaultRequest{Id: fault.GetId()}); err != nil {
		b.Logf("revert the CPU fault: %v (its deadline ends it a minute later)", err)
	}
}

// startRealAgent starts turbulence-agent as agent name, with a
// certificate from the bench's CA and a state directory of its own, on
// every controller address, under the packaged policy (which allows a
// CPU fault on every core). It is stopped with SIGTERM, which reverts
// what it holds, at the end of the bench (startProc).
func startRealAgent(b *testing.B, ctrl *controllerProcess, bin, name string) (string, <-chan struct{}) {
	b.Helper()
	dir := b.TempDir()
	files, err := ctrl.ca.IssueFiles(dir, name, ctrl.admin.CA, tlsutil.Leaf{
		Identity: tlsutil.Identity{Role: tlsutil.RoleAgent, Name: name}, Validity: 24 * time.Hour,
	})
	if err != nil {
		b.Fatal(err)
	}
	state, run := filepath.Join(dir, "state"), filepath.Join(dir, "run")
	for _, d := range []string{state, run} {
		// The agent refuses a state or socket directory others may enter.
		if err := os.Mkdir(d, 0o700); err != nil {
			b.Fatal(err)
		}
	}
	_, exited := startProc(b, bin, dir, name, "run", "--controller", strings.Join(ctrl.addrs, ","),
		"--ca", files.CA, "--cert", files.Cert, "--key", files.Key,
		"--state-dir", state, "--socket", filepath.Join(run, "agent.sock"),
		"--policy", filepath.Join("..", "..", "packaging", "agent.yaml"))
	return name, exited
}
