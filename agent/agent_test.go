package agent

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/turbulence-sre/turbulence/agent/guardian"
	"github.com/turbulence-sre/turbulence/agent/internal/fakecontroller"
	"github.com/turbulence-sre/turbulence/agent/policy"
	"github.com/turbulence-sre/turbulence/agent/worker"
	"github.com/turbulence-sre/turbulence/internal/faultspec"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	"github.com/turbulence-sre/turbulence/internal/version"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// TestMain makes the test binary its own worker and guardian, as the
// agent binary is.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == worker.Subcommand {
		os.Exit(worker.Main(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == guardian.Subcommand {
		os.Exit(guardian.Main(os.Args[2:], os.Stdin, os.Stderr, JournalFile, func(stateDir string) guardian.Recoverer {
			return RecoverGuarded(stateDir, os.Args[0])
		}))
	}
	if len(os.Args) > 1 && os.Args[1] == agentSubprocess {
		os.Exit(runAgentSubprocess()) // recover_test.go
	}
	_ = os.Setenv("GORACE", "atexit_sleep_ms=0") // workers inherit it
	goleak.VerifyTestMain(m)
}

const (
	waitLong      = 15 * time.Second
	stateActive   = turbulencev1.FaultState_FAULT_STATE_ACTIVE
	stateReverted = turbulencev1.FaultState_FAULT_STATE_REVERTED
)

// testAgent is a running agent and the fake controller it talks to.
type testAgent struct {
	*Agent
	ctrl   *fakecontroller.Server
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func startAgent(t *testing.T, opts fakecontroller.Options) *testAgent {
	t.Helper()
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("workers and their measurement need Linux /proc")
	}
	pki, err := tlsutil.EnsureDevPKI(t.TempDir(), "test-agent")
	if err != nil {
		t.Fatal(err)
	}
	return startAgentIn(t, pki, fakecontroller.Start(t, pki, opts), t.TempDir())
}

// stop cancels Run and waits for it; safe to call twice.
func (ta *testAgent) stop(t *testing.T) {
	t.Helper()
	ta.cancel()
	ta.once.Do(func() {
		select {
		case err := <-ta.done:
			if err != nil {
				t.Errorf("Run = %v", err)
			}
		case <-time.After(waitLong):
			t.Fatalf("Run did not return within %s of cancel", waitLong)
		}
	})
}

func cpuFault(id string, load uint32, d time.Duration) *turbulencev1.Fault {
	return &turbulencev1.Fault{
		Id: id,
		Spec: &turbulencev1.FaultSpec{
			Duration: durationpb.New(d),
			Kind:     &turbulencev1.FaultSpec_Cpu{Cpu: &turbulencev1.CPUSpec{Cores: 1, LoadPercent: load}},
		},
		Deadline: timestamppb.New(time.Now().Add(d)),
		State:    turbulencev1.FaultState_FAULT_STATE_PENDING,
	}
}

func (ta *testAgent) apply(t *testing.T, cmdID string, f *turbulencev1.Fault) *turbulencev1.CommandResult {
	t.Helper()
	ta.ctrl.Send(&turbulencev1.ControllerMessage{Msg: &turbulencev1.ControllerMessage_Apply{Apply: &turbulencev1.ApplyFault{CommandId: cmdID, Fault: f}}})
	return ta.result(t, cmdID)
}

func (ta *testAgent) result(t *testing.T, cmdID string) *turbulencev1.CommandResult {
	t.Helper()
	return ta.ctrl.WaitFor(waitLong, "result of "+cmdID, func(m *turbulencev1.AgentMessage) bool {
		return m.GetResult().GetCommandId() == cmdID
	}).GetResult()
}

// waitEnded waits for a heartbeat that lists faultID as REVERTED and
// returns that status.
func (ta *testAgent) waitEnded(t *testing.T, faultID string) *turbulencev1.FaultStatus {
	t.Helper()
	var got *turbulencev1.FaultStatus
	ta.ctrl.WaitFor(waitLong, "heartbeat with "+faultID+" reverted", func(m *turbulencev1.AgentMessage) bool {
		for _, st := range m.GetHeartbeat().GetFaults() {
			if st.GetFaultId() == faultID && st.GetState() == stateReverted {
				got = st
				return true
			}
		}
		return false
	})
	return got
}

func alive(pid int32) bool {
	return syscall.Kill(int(pid), 0) == nil
}

func TestAgent_AppliesFaultAndRevertsAtDeadline(t *testing.T) {
	ta := startAgent(t, fakecontroller.Options{})
	hello := ta.ctrl.WaitHello(waitLong)
	if hello.GetAgentId() != "test-agent" {
		t.Errorf("Hello.agent_id = %q, want the certificate name %q", hello.GetAgentId(), "test-agent")
	}
	// Kinds are added by their own changes; each must be there, sorted.
	kinds := hello.GetCapabilities().GetFaultKinds()
	if !slices.IsSorted(kinds) || !slices.Contains(kinds, "cpu") || !slices.Contains(kinds, "memory") || !slices.Contains(kinds, "disk_fill") || !slices.Contains(kinds, "disk_io") {
		t.Errorf("Hello.capabilities.fault_kinds = %q, want sorted kinds including cpu, disk_fill, disk_io and memory", kinds)
	}
	// The version comes from the binary's build info, not a link-time
	// string that plain `go build` leaves at a placeholder.
	if got, want := hello.GetFacts().GetAgentVersion(), version.String(); got != want || got == "dev" || got == "" {
		t.Errorf("Hello.facts.agent_version = %q, want the build's version %q", got, want)
	}
	if f := hello.GetFacts(); f.GetCpus() == 0 || f.GetOs() == "" || f.GetHostname() == "" || f.GetMemoryBytes() == 0 {
		t.Errorf("Hello.facts = %v, want them filled", f)
	}
	if hello.GetLabels()["env"] != "test" {
		t.Errorf("Hello.labels = %v", hello.GetLabels())
	}

	res := ta.apply(t, "c1", cpuFault("f1", 20, 1500*time.Millisecond))
	if !res.GetOk() || res.GetFaultId() != "f1" || res.GetStatus().GetState() != stateActive {
		t.Fatalf("CommandResult = %v, want ok ACTIVE", res)
	}
	pid := res.GetStatus().GetWorkerPid()
	if pid <= 0 || !alive(pid) {
		t.Fatalf("worker_pid %d is not a live process", pid)
	}
	if res.GetStatus().GetDeadline() == nil || res.GetStatus().GetAppliedAt() == nil {
		t.Errorf("status lacks deadline/applied_at: %v", res.GetStatus())
	}

	ended := ta.waitEnded(t, "f1")
	if ended.GetReason() != "deadline" {
		t.Errorf("ended reason = %q, want %q", ended.GetReason(), "deadline")
	}
	if alive(pid) {
		t.Errorf("worker %d still alive after the deadline", pid)
	}
}

func TestAgent_HaltRevertsAndRefusesUntilResume(t *testing.T) {
	ta := startAgent(t, fakecontroller.Options{})
	ta.ctrl.WaitHello(waitLong)
	res := ta.apply(t, "c1", cpuFault("f1", 20, time.Minute))
	if !res.GetOk() {
		t.Fatalf("apply f1: %v", res)
	}
	pid := res.GetStatus().GetWorkerPid()

	ta.ctrl.Send(&turbulencev1.ControllerMessage{Msg: &turbulencev1.ControllerMessage_Halt{Halt: &turbulencev1.HaltAgent{Reason: "test"}}})
	if st := ta.waitEnded(t, "f1"); st.GetReason() != "halt" {
		t.Errorf("f1 ended with %q, want %q", st.GetReason(), "halt")
	}
	if alive(pid) {
		t.Errorf("worker %d alive after halt", pid)
	}
	res = ta.apply(t, "c2", cpuFault("f2", 20, time.Minute))
	if res.GetOk() || !strings.Contains(res.GetError(), "halted") {
		t.Errorf("apply while halted = %v, want refused as halted", res)
	}

	ta.ctrl.Send(&turbulencev1.ControllerMessage{Msg: &turbulencev1.ControllerMessage_Resume{Resume: &turbulencev1.ResumeAgent{}}})
	res = ta.apply(t, "c3", cpuFault("f3", 20, time.Minute))
	if !res.GetOk() {
		t.Fatalf("apply after resume = %v, want ok", res)
	}
	pid3 := res.GetStatus().GetWorkerPid()

	// Invariant 3: stopping reverts everything before Run returns, and a
	// last heartbeat says so.
	ta.stop(t)
	if alive(pid3) {
		t.Errorf("worker %d alive after Run returned", pid3)
	}
	if st := ta.waitEnded(t, "f3"); st.GetReason() != "agent stopping" {
		t.Errorf("f3 ended with %q, want %q", st.GetReason(), "agent stopping")
	}
	if got := ta.Faults(); len(got) == 0 || got[len(got)-1].GetReason() != "agent stopping" {
		t.Errorf("Faults() = %v, want f3 last, ended by agent stopping", got)
	}
}

func TestAgent_RevertFaultAndValidation(t *testing.T) {
	ta := startAgent(t, fakecontroller.Options{})
	ta.ctrl.WaitHello(waitLong)
	res := ta.apply(t, "c1", cpuFault("f1", 20, time.Minute))
	if !res.GetOk() {
		t.Fatalf("apply f1: %v", res)
	}
	again := ta.apply(t, "c1-again", cpuFault("f1", 20, time.Minute))
	if !again.GetOk() || again.GetStatus().GetWorkerPid() != res.GetStatus().GetWorkerPid() {
		t.Errorf("second apply = %v, want ok with the same worker", again)
	}

	revert := func(cmdID, faultID string) *turbulencev1.CommandResult {
		ta.ctrl.Send(&turbulencev1.ControllerMessage{Msg: &turbulencev1.ControllerMessage_Revert{Revert: &turbulencev1.RevertFault{CommandId: cmdID, FaultId: faultID, Reason: "revert requested by admin/dev-admin"}}})
		return ta.result(t, cmdID)
	}
	for _, cmd := range []string{"r1", "r2"} {
		r := revert(cmd, "f1")
		if !r.GetOk() || r.GetStatus().GetState() != stateReverted || r.GetStatus().GetReason() != "revert requested" {
			t.Errorf("%s: revert = %v, want ok REVERTED %q", cmd, r, "revert requested")
		}
	}
	if alive(res.GetStatus().GetWorkerPid()) {
		t.Errorf("worker alive after revert")
	}
	if r := revert("r3", "never-applied"); !r.GetOk() {
		t.Errorf("revert of an unknown fault = %v, want ok", r)
	}

	bad := cpuFault("f-bad", 101, time.Minute)
	if r := ta.apply(t, "c-bad", bad); r.GetOk() || !strings.Contains(r.GetError(), "spec.cpu.load_percent") {
		t.Errorf("apply with load 101 = %v, want refused naming spec.cpu.load_percent", r)
	}
	late := cpuFault("f-late", 20, time.Minute)
	late.Deadline = timestamppb.New(time.Now().Add(-time.Second))
	if r := ta.apply(t, "c-late", late); r.GetOk() || !strings.Contains(r.GetError(), "deadline") {
		t.Errorf("apply past its deadline = %v, want refused", r)
	}
}

func TestAgent_LeaseExpiryRevertsFaults(t *testing.T) {
	// The fake never renews: after the apply (which renews) the agent
	// hears nothing for the 1 s TTL and must revert (invariant 2).
	ta := startAgent(t, fakecontroller.Options{Welcome: &turbulencev1.Welcome{
		LeaseTtl:          durationpb.New(time.Second),
		HeartbeatInterval: durationpb.New(100 * time.Millisecond),
	}})
	ta.ctrl.WaitHello(waitLong)
	res := ta.apply(t, "c1", cpuFault("f1", 20, time.Minute))
	if !res.GetOk() {
		t.Fatalf("apply: %v", res)
	}
	if st := ta.waitEnded(t, "f1"); st.GetReason() != "lease expired" {
		t.Errorf("f1 ended with %q, want %q", st.GetReason(), "lease expired")
	}
	if alive(res.GetStatus().GetWorkerPid()) {
		t.Errorf("worker alive after lease expiry")
	}
}

func TestNew_RefusesNonAgentCertificate(t *testing.T) {
	t.Parallel()
	pki, err := tlsutil.EnsureDevPKI(t.TempDir(), "a")
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(Config{Controllers: []string{"127.0.0.1:7420"}, TLS: pki.Admin, WorkerBinary: "/bin/false"})
	if err == nil || !strings.Contains(err.Error(), `want "agent"`) {
		t.Errorf("New with an admin certificate = %v, want a role error", err)
	}
	if _, err := New(Config{TLS: pki.Agent}); err == nil {
		t.Errorf("New without controllers succeeded")
	}
	var pathErr *os.PathError
	if _, err := New(Config{Controllers: []string{"x:1"}, TLS: tlsutil.Files{Cert: "/nonexistent"}}); !errors.As(err, &pathErr) {
		t.Errorf("New with a missing certificate = %v, want a path error", err)
	}
}

func TestAgent_ReconnectWithinTTLKeepsFaults(t *testing.T) {
	ta := startAgent(t, fakecontroller.Options{})
	ta.ctrl.WaitHello(waitLong)
	res := ta.apply(t, "c1", cpuFault("f1", 20, time.Minute))
	if !res.GetOk() {
		t.Fatalf("apply: %v", res)
	}
	ta.ctrl.DropSession()
	// Invariant 2: a reconnect within the TTL reverts nothing; the held
	// fault is listed in the new Hello.
	hello := ta.ctrl.WaitHello(waitLong)
	if len(hello.GetFaults()) != 1 || hello.GetFaults()[0].GetFaultId() != "f1" || hello.GetFaults()[0].GetState() != stateActive {
		t.Errorf("Hello after reconnect lists %v, want f1 ACTIVE", hello.GetFaults())
	}
	if !alive(res.GetStatus().GetWorkerPid()) {
		t.Errorf("worker died across a reconnect")
	}
}

// TestAgent_HelloAdvertisesOnlyKindsItsPolicyAllows: an agent whose local
// policy forbids a kind must not advertise it (issue 13, item 8): the
// controller would offer the fleet a fault this agent always refuses.
func TestAgent_HelloAdvertisesOnlyKindsItsPolicyAllows(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("the agent reads host facts from Linux /proc")
	}
	pki, err := tlsutil.EnsureDevPKI(t.TempDir(), "test-agent")
	if err != nil {
		t.Fatal(err)
	}
	pol := policy.Default()
	pol.AllowedKinds = []string{faultspec.KindCPU, faultspec.KindMemory}
	ta := startAgentIn(t, pki, fakecontroller.Start(t, pki, fakecontroller.Options{}), t.TempDir(), func(c *Config) { c.Policy = &pol })
	kinds := ta.ctrl.WaitHello(waitLong).GetCapabilities().GetFaultKinds()
	if want := []string{faultspec.KindCPU, faultspec.KindMemory}; !slices.Equal(kinds, want) {
		t.Errorf("Hello.capabilities.fault_kinds = %q, want %q (the policy's allowed kinds)", kinds, want)
	}
}

func TestNew_RefusesMetricsPathsTheHeartbeatCannotCarry(t *testing.T) {
	t.Parallel()
	pki, err := tlsutil.EnsureDevPKI(t.TempDir(), "a")
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	many := make([]string, 16)
	for i := range many {
		many[i] = "/srv"
	}
	for _, c := range []struct {
		paths []string
		want  string
	}{
		{[]string{"relative/dir"}, `"relative/dir" must be an absolute path of at most 4096 bytes`},
		{many, "16 given, at most 15 besides the state directory"},
	} {
		_, err := New(Config{Controllers: []string{"127.0.0.1:7420"}, TLS: pki.Agent, StateDir: state, WorkerBinary: "/bin/false", MetricsPaths: c.paths})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "--watch-fs") {
			t.Errorf("New(MetricsPaths %d paths) = %v, want an error naming --watch-fs and %q", len(c.paths), err, c.want)
		}
	}
	if _, err := New(Config{Controllers: []string{"127.0.0.1:7420"}, TLS: pki.Agent, StateDir: state, WorkerBinary: "/bin/false", MetricsPaths: []string{"/srv"}}); err != nil {
		t.Errorf("New with one absolute metrics path = %v", err)
	}
}
