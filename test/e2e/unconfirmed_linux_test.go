package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/turbulence-sre/turbulence/agent"
	"github.com/turbulence-sre/turbulence/controller"
	"github.com/turbulence-sre/turbulence/controller/agentapi"
	"github.com/turbulence-sre/turbulence/controller/controllertest"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
	"github.com/turbulence-sre/turbulence/test/internal/testbuild"
)

// killedAgentPolicy lets the agent run small CPU faults only, at nice 19,
// so that the fault costs the shared machine nothing.
const killedAgentPolicy = "allowed_kinds: [cpu]\nmax_duration: 1h\nworker_nice: 19\ncpu:\n  max_load_percent: 10\n  max_cores: 1\n"

// agentProc is a turbulence-agent process: the binary `make build` makes,
// run as a host runs it.
type agentProc struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// startAgentProc runs bin with the state directory and socket under home,
// its output in home/agent.log. It dies with the test binary (PDEATHSIG).
func startAgentProc(t *testing.T, bin, home string, srv *controllertest.Server) *agentProc {
	t.Helper()
	log, err := os.OpenFile(filepath.Join(home, "agent.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	tls := srv.PKI.Agent
	cmd := exec.Command(bin, "run",
		"--controller", srv.Addr, "--ca", tls.CA, "--cert", tls.Cert, "--key", tls.Key,
		"--state-dir", filepath.Join(home, "state"),
		"--policy", filepath.Join(home, "policy.yaml"),
		"--socket", filepath.Join(home, "agent.sock"))
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = log.Close()
		t.Fatalf("start agent: %v", err)
	}
	p := &agentProc{cmd: cmd, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		_ = log.Close()
		close(p.exited)
	}()
	// A test that fails early stops the agent the way systemd does
	// (SIGTERM reverts every fault), and never leaves it running.
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(30 * time.Second):
			t.Errorf("agent ignored SIGTERM for 30s; killing it")
			_ = cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(home, "agent.log")); err == nil {
				t.Logf("agent log:\n%s", b)
			}
		}
	})
	return p
}

// TestAgentKilled_UnconfirmedUntilItReports is invariant 8 end to end,
// with the real agent binary: an agent stopped for a moment is shown
// disconnected while it is silent and keeps its fault; an agent SIGKILLed while it holds a CPU
// fault leaves the fault UNCONFIRMED on the controller once its lease has
// run out (never REVERTED on the controller's guess), and when the agent
// is started again on the same state directory it reports how the fault
// really ended — reverted at start-up from its journal, or by the
// worker's own deadline — and the controller records that reason and the
// agent's time.
func TestAgentKilled_UnconfirmedUntilItReports(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("workers and their measurement need Linux /proc")
	}
	// A name of its own: the agent's start-up sweep recognises workers by
	// their binary, and this one must match no other test's.
	built := testbuild.BuildBinaries(t, t.TempDir(), "./agent/cmd/turbulence-agent")[0]
	bin := filepath.Join(filepath.Dir(built), "turbulence-agent-e2e-killed")
	if err := os.Rename(built, bin); err != nil {
		t.Fatal(err)
	}
	const ttl, beat = 3 * time.Second, 300 * time.Millisecond
	srv := controllertest.NewServer(t, func(c *controller.Config) { c.LeaseTTL = ttl; c.HeartbeatInterval = beat })
	api := srv.AdminClient(t)
	// A short home: the socket path must fit in sun_path.
	home, err := os.MkdirTemp("", "tek-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(home) })
	if err := os.WriteFile(filepath.Join(home, "policy.yaml"), []byte(killedAgentPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	connected := func() bool {
		a, err := api.GetAgent(t.Context(), &turbulencev1.GetAgentRequest{Id: controllertest.AgentName})
		return err == nil && a.GetConnected()
	}
	fault := func(id string) *turbulencev1.Fault {
		f, err := api.GetFault(t.Context(), &turbulencev1.GetFaultRequest{Id: id})
		if err != nil {
			t.Fatalf("GetFault %s: %v", id, err)
		}
		return f
	}

	first := startAgentProc(t, bin, home, srv)
	controllertest.WaitFor(t, waitLong, "the agent to connect", connected)
	applied, err := api.ApplyFault(t.Context(), &turbulencev1.ApplyFaultRequest{
		AgentId: controllertest.AgentName,
		Spec: &turbulencev1.FaultSpec{Duration: durationpb.New(10 * time.Minute),
			Kind: &turbulencev1.FaultSpec_Cpu{Cpu: &turbulencev1.CPUSpec{Cores: 1, LoadPercent: 3}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	id := applied.GetId()
	var pid int32
	controllertest.WaitFor(t, waitLong, "the fault active with a measured load", func() bool {
		f := fault(id)
		pid = f.GetStatus().GetWorkerPid()
		return f.GetState() == stateActive && pid != 0 && f.GetStatus().GetMeasuredCpuPercent() > 0
	})

	// A stopped agent keeps its TCP connection open (a half-open stream,
	// as when its host vanishes): it must be shown disconnected once it
	// misses its heartbeats, not when keepalive ends the stream, and
	// connected again as soon as it beats again, well within its lease.
	if err := first.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	controllertest.WaitFor(t, waitLong, "the stopped agent shown disconnected", func() bool { return !connected() })
	t.Logf("stopped agent shown disconnected %s after SIGSTOP (heartbeat interval %s)", time.Since(stopped).Round(time.Millisecond), beat)
	if err := first.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	controllertest.WaitFor(t, waitLong, "the resumed agent shown connected", connected)
	if f := fault(id); f.GetState() != stateActive {
		t.Fatalf("fault after a short stop = %s %q, want ACTIVE", f.GetState(), f.GetReason())
	}

	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	<-first.exited
	controllertest.WaitFor(t, waitLong, "the killed agent shown disconnected", func() bool { return !connected() })
	t.Logf("agent shown disconnected %s after SIGKILL (heartbeat interval %s)", time.Since(killed).Round(time.Millisecond), beat)
	controllertest.WaitFor(t, waitLong, "the worker gone with its agent", func() bool { return !alive(pid) })

	// Lease TTL + the controller's grace, checked every second.
	var f *turbulencev1.Fault
	controllertest.WaitFor(t, waitLong, "the controller to give up on the fault", func() bool {
		f = fault(id)
		return f.GetState() != stateActive
	})
	if f.GetState() != turbulencev1.FaultState_FAULT_STATE_UNCONFIRMED || f.GetReason() != agentapi.ReasonLeaseExpired {
		t.Fatalf("fault after the lease = %s %q, want UNCONFIRMED %q", f.GetState(), f.GetReason(), agentapi.ReasonLeaseExpired)
	}
	if since := f.GetUnconfirmedSince(); since == nil || since.AsTime().After(killed.Add(ttl+time.Second)) || since.AsTime().Before(applied.GetCreatedAt().AsTime()) {
		t.Errorf("unconfirmed_since = %v, want the lease's end (last contact before %s + %s)", since, killed.Format(time.RFC3339Nano), ttl)
	}
	if f.GetEndedAt() != nil {
		t.Errorf("ended_at = %s on a fault nobody saw end", f.GetEndedAt().AsTime())
	}
	if f.GetStatus().GetMeasuredCpuPercent() <= 0 {
		t.Errorf("status = %v, want the last measured load kept", f.GetStatus())
	}

	restarted := time.Now()
	startAgentProc(t, bin, home, srv)
	controllertest.WaitFor(t, waitLong, "the agent's report of how the fault ended", func() bool {
		f = fault(id)
		return f.GetState() != turbulencev1.FaultState_FAULT_STATE_UNCONFIRMED
	})
	if f.GetState() != stateReverted || f.GetReason() != agent.ReasonRecovered {
		t.Errorf("fault after the agent's report = %s %q, want REVERTED %q", f.GetState(), f.GetReason(), agent.ReasonRecovered)
	}
	if end := f.GetEndedAt().AsTime(); end.Before(restarted) || end.After(time.Now()) || !end.Equal(f.GetStatus().GetEndedAt().AsTime()) {
		t.Errorf("ended_at = %s, want the agent's own (%v), at its start-up after %s", end, f.GetStatus().GetEndedAt(), restarted.Format(time.RFC3339Nano))
	}
	if f.GetStatus().GetMeasuredCpuPercent() <= 0 {
		t.Errorf("status = %v, want the last measured load kept", f.GetStatus())
	}
}
