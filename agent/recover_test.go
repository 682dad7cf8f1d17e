package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/turbulence-sre/turbulence/agent/internal/fakecontroller"
	"github.com/turbulence-sre/turbulence/agent/journal"
	"github.com/turbulence-sre/turbulence/agent/policy"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// agentSubprocess is argv[1] that makes the test binary run an agent (see
// TestMain), configured by the environment variables below, so that a test
// can SIGKILL it.
const agentSubprocess = "agent-under-test"

const (
	envController = "TURBULENCE_TEST_CONTROLLER"
	envCA         = "TURBULENCE_TEST_CA"
	envCert       = "TURBULENCE_TEST_CERT"
	envKey        = "TURBULENCE_TEST_KEY"
	envStateDir   = "TURBULENCE_TEST_STATE_DIR"
)

// runAgentSubprocess is the body of the agent subprocess.
func runAgentSubprocess() int {
	a, err := New(Config{
		Controllers:  []string{os.Getenv(envController)},
		TLS:          tlsutil.Files{CA: os.Getenv(envCA), Cert: os.Getenv(envCert), Key: os.Getenv(envKey)},
		StateDir:     os.Getenv(envStateDir),
		WorkerBinary: os.Args[0],
		LocalSocket:  filepath.Join(os.Getenv(envStateDir), "run", "agent.sock"),
		BackoffMin:   10 * time.Millisecond,
		BackoffMax:   100 * time.Millisecond,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "agent-under-test:", err)
		return 1
	}
	if err := a.Run(context.Background()); err != nil { // runs until killed
		fmt.Fprintln(os.Stderr, "agent-under-test:", err)
		return 1
	}
	return 0
}

func startAgentProcess(t *testing.T, pki tlsutil.DevPKI, ctrl *fakecontroller.Server, stateDir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], agentSubprocess)
	cmd.Env = append(os.Environ(),
		envController+"="+ctrl.Addr, envCA+"="+pki.Agent.CA, envCert+"="+pki.Agent.Cert,
		envKey+"="+pki.Agent.Key, envStateDir+"="+stateDir)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

// Invariant 3 and 4: an agent killed with SIGKILL mid-fault takes its
// worker with it at once (PDEATHSIG), and the next start finds the fault
// in the journal, reverts it and tells the controller.
func TestAgent_SIGKILLMidFault_WorkerDiesAndRestartRecovers(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("workers need Linux /proc")
	}
	pki, err := tlsutil.EnsureDevPKI(t.TempDir(), "test-agent")
	if err != nil {
		t.Fatal(err)
	}
	ctrl := fakecontroller.Start(t, pki, fakecontroller.Options{})
	stateDir := t.TempDir()
	proc := startAgentProcess(t, pki, ctrl, stateDir)
	ctrl.WaitHello(waitLong)
	ta := &testAgent{ctrl: ctrl}
	res := ta.apply(t, "c1", cpuFault("f-killed", 20, 10*time.Minute))
	pid := res.GetStatus().GetWorkerPid()
	if !res.GetOk() || !alive(pid) {
		t.Fatalf("apply = %v, want a live worker", res)
	}

	if err := proc.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = proc.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("worker %d alive 5s after its agent was SIGKILLed", pid)
		}
		time.Sleep(5 * time.Millisecond) // waiting for the kernel's PDEATHSIG
	}

	// The journal of the killed agent still names the fault…
	j, open, err := journal.OpenFile(filepath.Join(stateDir, JournalFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(open) != 1 || open[0].Intent.FaultID != "f-killed" || !strings.Contains(string(open[0].Undo), fmt.Sprintf(`"worker_pid":%d,"worker_start_ticks":`, pid)) {
		t.Fatalf("journal after SIGKILL lists %+v, want f-killed applied by worker %d", open, pid)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}

	// …and a restarted agent reverts it and reports it ended.
	restarted := startAgentIn(t, pki, ctrl, stateDir)
	ended := restarted.waitEnded(t, "f-killed")
	if ended.GetReason() != ReasonRecovered {
		t.Errorf("reason = %q, want %q", ended.GetReason(), ReasonRecovered)
	}
	restarted.stop(t)
	rec, err := Cleanup(Config{StateDir: stateDir, WorkerBinary: os.Args[0]})
	if err != nil || len(rec.Reverted) != 0 || len(rec.Swept) != 0 {
		t.Errorf("cleanup after recovery = %+v, %v; want nothing left", rec, err)
	}
}

func TestCleanup_RefusedWhileAgentRuns(t *testing.T) {
	ta := startAgent(t, fakecontroller.Options{})
	ta.ctrl.WaitHello(waitLong)
	_, err := Cleanup(Config{StateDir: ta.cfg.StateDir, WorkerBinary: os.Args[0]})
	if !errors.Is(err, journal.ErrLocked) {
		t.Fatalf("Cleanup while the agent runs: err = %v, want journal.ErrLocked", err)
	}
}

func TestAgent_PolicyRefusalReachesController(t *testing.T) {
	ta := startAgent(t, fakecontroller.Options{})
	ta.ctrl.WaitHello(waitLong)
	f := cpuFault("f-long", 20, 2*time.Hour) // the default policy caps faults at 1h
	res := ta.apply(t, "c1", f)
	if res.GetOk() || res.GetError() == "" {
		t.Fatalf("apply of a 2h fault = %v, want refused", res)
	}
	for _, want := range []string{"max_duration", "1h0m0s"} {
		if !strings.Contains(res.GetError(), want) {
			t.Errorf("refusal %q does not name %q", res.GetError(), want)
		}
	}
	if len(ta.Faults()) != 0 {
		t.Errorf("agent holds %v after a refusal", ta.Faults())
	}
}

// startAgentIn runs an agent in this process with the given PKI, fake
// controller and state directory, and stops it in t.Cleanup.
func startAgentIn(t *testing.T, pki tlsutil.DevPKI, ctrl *fakecontroller.Server, stateDir string, configure ...func(*Config)) *testAgent {
	t.Helper()
	cfg := Config{
		Controllers:  []string{ctrl.Addr},
		TLS:          pki.Agent,
		StateDir:     stateDir,
		Labels:       map[string]string{"env": "test"},
		WorkerBinary: os.Args[0],
		LocalSocket:  filepath.Join(stateDir, "run", "agent.sock"),
		Logger:       slogFor(t),
		BackoffMin:   10 * time.Millisecond,
		BackoffMax:   100 * time.Millisecond,
	}
	for _, c := range configure {
		c(&cfg)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ta := &testAgent{Agent: a, ctrl: ctrl, cancel: cancel, done: make(chan error, 1)}
	go func() { ta.done <- a.Run(ctx) }()
	t.Cleanup(func() { ta.stop(t) })
	return ta
}

func TestNew_RefusesMissingStateDirAndBadPolicy(t *testing.T) {
	t.Parallel()
	pki, err := tlsutil.EnsureDevPKI(t.TempDir(), "a")
	if err != nil {
		t.Fatal(err)
	}
	base := Config{Controllers: []string{"127.0.0.1:7420"}, TLS: pki.Agent, WorkerBinary: "/bin/false"}
	if _, err := New(base); err == nil || !strings.Contains(err.Error(), "state directory") {
		t.Errorf("New without a state directory = %v, want an error naming it", err)
	}
	bad := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(bad, []byte("max_duration: 1h\nmax_durration: 2h\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := base
	cfg.StateDir = t.TempDir()
	cfg.PolicyPath = bad
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "max_durration") {
		t.Errorf("New with a misspelt policy field = %v, want an error naming it", err)
	}
	cfg.PolicyPath = filepath.Join(t.TempDir(), "missing.yaml")
	if _, err := New(cfg); err == nil {
		t.Errorf("New with an explicit policy file that does not exist succeeded")
	}
}

func TestNew_ProtectsTheControllersAddresses(t *testing.T) {
	t.Parallel()
	pki, err := tlsutil.EnsureDevPKI(t.TempDir(), "a")
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{Controllers: []string{"198.18.0.7:7420", "[2001:db8::7]:7420", "localhost:7420"}, TLS: pki.Agent,
		StateDir: t.TempDir(), WorkerBinary: "/bin/false"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"198.18.0.7/32", "2001:db8::7/128", "127.0.0.1/32"} {
		if !slices.Contains(a.policy.Network.ProtectedCIDRs, want) {
			t.Errorf("protected CIDRs %v lack the controller address %s", a.policy.Network.ProtectedCIDRs, want)
		}
	}
	// A partition aimed at a controller is refused by the policy.
	spec := &turbulencev1.FaultSpec{Kind: &turbulencev1.FaultSpec_Partition{Partition: &turbulencev1.PartitionSpec{
		Target: &turbulencev1.TrafficTarget{Cidrs: []string{"198.18.0.0/24"}}}}}
	var r *policy.Refusal
	if err := a.policy.Check(spec, policy.Host{}); !errors.As(err, &r) || r.Rule != "network.protected_cidrs" {
		t.Errorf("partition of the controllers' subnet: %v, want refused by network.protected_cidrs", err)
	}
}

// A fault that ends is reported at once, not at the next heartbeat: here
// the next one is an hour away, so only the immediate report can arrive.
func TestAgent_EndedFaultReportedAtOnce(t *testing.T) {
	ta := startAgent(t, fakecontroller.Options{Welcome: &turbulencev1.Welcome{
		HeartbeatInterval: durationpb.New(time.Hour),
		LeaseTtl:          durationpb.New(time.Hour),
	}})
	ta.ctrl.WaitHello(waitLong)
	res := ta.apply(t, "c1", cpuFault("f-short", 10, 1500*time.Millisecond))
	if !res.GetOk() {
		t.Fatalf("apply = %v", res)
	}
	if ended := ta.waitEnded(t, "f-short"); ended.GetReason() != "deadline" {
		t.Errorf("reason = %q, want deadline", ended.GetReason())
	}
}
