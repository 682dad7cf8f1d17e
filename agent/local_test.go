package agent

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/agent/internal/fakecontroller"
	"github.com/turbulence-sre/turbulence/agent/localapi"
	"github.com/turbulence-sre/turbulence/internal/testutil"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// call sends one request over the agent's local socket.
func (ta *testAgent) call(t *testing.T, req localapi.Request) *localapi.Response {
	t.Helper()
	resp, err := localapi.Call(t.Context(), ta.cfg.LocalSocket, req)
	if err != nil {
		t.Fatalf("local %s: %v", req.Op, err)
	}
	return resp
}

// Invariant 5, path 3: `turbulence-agent halt` on the host reverts every
// fault at once, refuses new ones whatever the controller says, reaches the
// fleet view, and only a local resume lifts it.
func TestAgent_LocalHaltRevertsRefusesAndReports(t *testing.T) {
	ta := startAgent(t, fakecontroller.Options{})
	if h := ta.ctrl.WaitHello(waitLong); h.GetLocallyHalted() {
		t.Fatalf("Hello.locally_halted = true before any halt")
	}
	res := ta.apply(t, "c1", cpuFault("f1", 20, time.Minute))
	if !res.GetOk() {
		t.Fatalf("apply f1: %v", res)
	}
	pid := res.GetStatus().GetWorkerPid()

	st := ta.call(t, localapi.Request{Op: localapi.OpStatus}).Status
	if st.AgentID != "test-agent" || st.Controller != ta.ctrl.Addr || st.LocallyHalted || st.FleetHalted {
		t.Errorf("status = %+v, want test-agent connected to %s, not halted", st, ta.ctrl.Addr)
	}
	if len(st.Faults) != 1 || st.Faults[0].ID != "f1" || st.Faults[0].Kind != "cpu" || st.Faults[0].State != "active" ||
		st.Faults[0].Deadline == nil || st.Faults[0].WorkerPID != pid {
		t.Errorf("status faults = %+v, want f1 cpu active with its deadline and worker %d", st.Faults, pid)
	}

	resp := ta.call(t, localapi.Request{Op: localapi.OpHalt, Reason: "checkout SLO burn"})
	// At once: the worker is gone by the time halt answers.
	if alive(pid) {
		t.Errorf("worker %d alive after the local halt answered", pid)
	}
	if len(resp.Reverted) != 1 || resp.Reverted[0].ID != "f1" || resp.Reverted[0].Kind != "cpu" ||
		resp.Reverted[0].State != "reverted" || resp.Reverted[0].Reason != "local halt" {
		t.Errorf("halt reverted %+v, want f1 cpu reverted for %q", resp.Reverted, "local halt")
	}
	if !resp.Status.LocallyHalted || resp.Status.LocalHaltReason != "checkout SLO burn" || len(resp.Status.Faults) != 0 {
		t.Errorf("status after halt = %+v", resp.Status)
	}
	// The controller hears of the end and of the halt.
	hb := ta.ctrl.WaitFor(waitLong, "heartbeat with f1 ended by the local halt", func(m *turbulencev1.AgentMessage) bool {
		for _, f := range m.GetHeartbeat().GetFaults() {
			if f.GetFaultId() == "f1" && f.GetState() == stateReverted {
				return true
			}
		}
		return false
	}).GetHeartbeat()
	if !hb.GetLocallyHalted() {
		t.Errorf("heartbeat reporting the halt's revert has locally_halted = false")
	}
	for _, f := range hb.GetFaults() {
		if f.GetFaultId() == "f1" && f.GetReason() != "local halt" {
			t.Errorf("f1 reported ended with %q, want %q", f.GetReason(), "local halt")
		}
	}

	host, _ := os.Hostname()
	wantRefusal := "agent halted locally on " + host + ": checkout SLO burn; run turbulence-agent resume there"
	if r := ta.apply(t, "c2", cpuFault("f2", 20, time.Minute)); r.GetOk() || r.GetError() != wantRefusal {
		t.Errorf("apply while halted locally = %v, want refused with %q", r, wantRefusal)
	}
	// The fleet's resume does not lift the host's halt.
	ta.ctrl.Send(&turbulencev1.ControllerMessage{Msg: &turbulencev1.ControllerMessage_Resume{Resume: &turbulencev1.ResumeAgent{}}})
	if r := ta.apply(t, "c3", cpuFault("f3", 20, time.Minute)); r.GetOk() || !strings.Contains(r.GetError(), "halted locally") {
		t.Errorf("apply after a fleet resume = %v, want still refused as halted locally", r)
	}
	// A new session (a controller failover) learns of it in the Hello.
	ta.ctrl.DropSession()
	if h := ta.ctrl.WaitHello(waitLong); !h.GetLocallyHalted() {
		t.Errorf("Hello after reconnect: locally_halted = false, want true")
	}

	resp = ta.call(t, localapi.Request{Op: localapi.OpResume})
	if !resp.WasHalted || resp.Status.LocallyHalted {
		t.Errorf("resume = %+v, want was_halted and no longer halted", resp)
	}
	ta.ctrl.WaitFor(waitLong, "heartbeat with locally_halted false", func(m *turbulencev1.AgentMessage) bool {
		return m.GetHeartbeat() != nil && !m.GetHeartbeat().GetLocallyHalted()
	})
	if r := ta.apply(t, "c4", cpuFault("f4", 20, time.Minute)); !r.GetOk() {
		t.Errorf("apply after a local resume = %v, want ok", r)
	}
}

// startAgentAlone runs an agent whose controller address has nobody
// listening: nothing but the local socket can reach it.
func startAgentAlone(t *testing.T, socket, stateDir string) *testAgent {
	t.Helper()
	pki, err := tlsutil.EnsureDevPKI(t.TempDir(), "test-agent")
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{
		Controllers:  []string{"127.0.0.1:1"}, // refused at once on loopback
		TLS:          pki.Agent,
		StateDir:     stateDir,
		WorkerBinary: os.Args[0],
		LocalSocket:  socket,
		Logger:       slogFor(t),
		BackoffMin:   10 * time.Millisecond,
		BackoffMax:   100 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ta := &testAgent{Agent: a, cancel: cancel, done: make(chan error, 1)}
	go func() { ta.done <- a.Run(ctx) }()
	t.Cleanup(func() { ta.stop(t) })
	return ta
}

// waitServing polls until the agent's socket answers a status.
func (ta *testAgent) waitServing(t *testing.T) *localapi.Status {
	t.Helper()
	var st *localapi.Status
	testutil.WaitFor(t, waitLong, func() (bool, string) {
		resp, err := localapi.Call(t.Context(), ta.cfg.LocalSocket, localapi.Request{Op: localapi.OpStatus})
		if err != nil {
			return false, err.Error()
		}
		st = resp.Status
		return true, ""
	})
	return st
}

// The kill switch works with no controller at all (invariant 5: "with no
// controller"), and a local halt outlives the agent process.
func TestAgent_LocalHaltWithoutControllerSurvivesRestart(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "run", "agent.sock")
	stateDir := t.TempDir()
	ta := startAgentAlone(t, socket, stateDir)
	st := ta.waitServing(t)
	if st.AgentID != "test-agent" || st.Controller != "" || st.LocallyHalted || len(st.Faults) != 0 {
		t.Errorf("status = %+v, want test-agent with no controller, not halted, no faults", st)
	}
	resp := ta.call(t, localapi.Request{Op: localapi.OpHalt, Reason: "network maintenance"})
	if len(resp.Reverted) != 0 || !resp.Status.LocallyHalted || resp.Status.LocalHaltReason != "network maintenance" || resp.Status.LocalHaltSince == nil {
		t.Fatalf("halt = %+v, want halted for %q with nothing reverted", resp.Status, "network maintenance")
	}
	since := *resp.Status.LocalHaltSince
	if st := ta.call(t, localapi.Request{Op: localapi.OpStatus}).Status; !st.LocallyHalted || st.Controller != "" {
		t.Errorf("status after halt = %+v, want halted, no controller", st)
	}

	// A second agent on the same socket refuses to run rather than take
	// over the first one's kill switch.
	second := startAgentAlone(t, socket, t.TempDir())
	select {
	case err := <-second.done:
		second.done <- nil // stop() in Cleanup waits for it
		if err == nil || !strings.Contains(err.Error(), "another agent is serving") {
			t.Errorf("second agent's Run = %v, want refused", err)
		}
	case <-time.After(waitLong):
		t.Fatal("second agent on the same socket kept running")
	}
	ta.call(t, localapi.Request{Op: localapi.OpStatus}) // the first still answers

	ta.stop(t)
	if _, err := os.Lstat(socket); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket after Run returned: %v, want it removed", err)
	}

	// Restarted (systemd's Restart=on-failure), the agent is still halted.
	again := startAgentAlone(t, socket, stateDir)
	st = again.waitServing(t)
	if !st.LocallyHalted || st.LocalHaltReason != "network maintenance" || st.LocalHaltSince == nil || !st.LocalHaltSince.Equal(since) {
		t.Errorf("status after restart = %+v, want still halted for %q since %v", st, "network maintenance", since)
	}
	if resp := again.call(t, localapi.Request{Op: localapi.OpResume}); !resp.WasHalted || resp.Status.LocallyHalted {
		t.Errorf("resume = %+v, want the halt lifted", resp)
	}
	if _, err := os.Lstat(filepath.Join(stateDir, LocalHaltFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s after resume: %v, want it removed", LocalHaltFile, err)
	}
}
