package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/turbulence-sre/turbulence/agent"
	"github.com/turbulence-sre/turbulence/controller/agentapi"
	"github.com/turbulence-sre/turbulence/controller/cli"
	"github.com/turbulence-sre/turbulence/controller/controllertest"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
	"github.com/turbulence-sre/turbulence/test/internal/testbuild"
)

// killedAgentPolicy lets the agent run small CPU faults only, at nice 19,
// so that the fault costs the shared machine nothing.
const killedAgentPolicy = "allowed_kinds: [cpu]\nmax_duration: 1h\nworker_nice: 19\ncpu:\n  max_load_percent: 10\n  max_cores: 1\n"

// daemon is a turbulence-agent or turbulence-controller process: the
// binary `make build` makes, run as a host runs it.
type daemon struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// startDaemon runs bin with args, its output appended to logPath. It dies
// with the test binary (PDEATHSIG); at the test's end it is stopped the
// way systemd stops it (SIGTERM: an agent reverts every fault first).
func startDaemon(t *testing.T, logPath, bin string, args ...string) *daemon {
	t.Helper()
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = log.Close()
		t.Fatalf("start %s: %v", filepath.Base(bin), err)
	}
	d := &daemon{cmd: cmd, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		_ = log.Close()
		close(d.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(30 * time.Second):
			t.Errorf("%s ignored SIGTERM for 30s; killing it", filepath.Base(bin))
			_ = cmd.Process.Kill()
			<-d.exited
		}
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				t.Logf("%s:\n%s", filepath.Base(logPath), b)
			}
		}
	})
	return d
}

// TestAgentKilled_UnconfirmedUntilItReports is invariant 8 end to end,
// with the real controller and agent binaries on loopback: an agent stopped for a moment is shown
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
	bins := testbuild.BuildBinaries(t, t.TempDir(), "./controller/cmd/turbulence-controller", "./agent/cmd/turbulence-agent")
	// A name of its own: the agent's start-up sweep recognises workers by
	// their binary, and this one must match no other test's.
	agentBin := filepath.Join(filepath.Dir(bins[1]), "turbulence-agent-e2e-killed")
	if err := os.Rename(bins[1], agentBin); err != nil {
		t.Fatal(err)
	}
	// A short home: the agent's socket path must fit in sun_path.
	home, err := os.MkdirTemp("", "tek-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(home) })
	pki, err := tlsutil.EnsureDevPKI(filepath.Join(home, "tls"), controllertest.AgentName)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, "policy.yaml"), []byte(killedAgentPolicy), 0o600); err != nil {
		t.Fatal(err)
	}

	const ttl, beat = 3 * time.Second, 300 * time.Millisecond
	addr := controllertest.FreeAddr(t)
	startDaemon(t, filepath.Join(home, "controller.log"), bins[0],
		"--node-id", "e2e-c1", "--data-dir", filepath.Join(home, "data"),
		"--grpc-addr", addr, "--raft-addr", controllertest.FreeAddr(t),
		"--ca", pki.Controller.CA, "--cert", pki.Controller.Cert, "--key", pki.Controller.Key,
		"--lease-ttl", ttl.String(), "--heartbeat-interval", beat.String())
	startAgent := func() *daemon {
		return startDaemon(t, filepath.Join(home, "agent.log"), agentBin, "run",
			"--controller", addr, "--ca", pki.Agent.CA, "--cert", pki.Agent.Cert, "--key", pki.Agent.Key,
			"--state-dir", filepath.Join(home, "state"),
			"--policy", filepath.Join(home, "policy.yaml"),
			"--socket", filepath.Join(home, "agent.sock"))
	}
	tlsCfg, err := tlsutil.ClientConfig(pki.Admin, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	api := turbulencev1.NewControlServiceClient(conn)
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

	first := startAgent()
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

	// What a person sees: turbctl against the controller process.
	show := func(want ...string) {
		t.Helper()
		var out, errOut bytes.Buffer
		code := cli.Main([]string{"--controller", addr, "--ca", pki.Admin.CA, "--cert", pki.Admin.Cert, "--key", pki.Admin.Key,
			"fault", "show", id}, &out, &errOut)
		if code != cli.ExitOK {
			t.Fatalf("turbctl fault show: exit %d: %s", code, errOut.String())
		}
		for _, w := range want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("turbctl fault show lacks %q:\n%s", w, out.String())
			}
		}
	}
	show("UNCONFIRMED (outcome unknown", "Unknown since:", "(its last report; none since)")

	restarted := time.Now()
	startAgent()
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
	show("State:       REVERTED", "Reason:      "+agent.ReasonRecovered, "Ended on host:")
}
