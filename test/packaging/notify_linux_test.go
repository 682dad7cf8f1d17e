package packaging

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/turbulence-sre/turbulence/agent"
	"github.com/turbulence-sre/turbulence/agent/journal"
	"github.com/turbulence-sre/turbulence/internal/testutil"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
	"github.com/turbulence-sre/turbulence/test/internal/testbuild"
)

// watchdogUsec is the WATCHDOG_USEC the tests give the agent: 2 s, so
// the agent pings every second (half of it, systemd's advice).
const watchdogUsec = "2000000"

// notifySocket stands in for systemd's notification socket.
type notifySocket struct {
	path string
	conn *net.UnixConn
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &notifySocket{path: path, conn: c}
}

// next returns the next message, or "" if none came within wait.
func (s *notifySocket) next(t *testing.T, wait time.Duration) string {
	t.Helper()
	if err := s.conn.SetReadDeadline(time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := s.conn.Read(buf)
	if err != nil {
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
			return ""
		}
		t.Fatal(err)
	}
	return string(buf[:n])
}

// agentUnderSystemd starts the built agent as systemd would start it
// under a Type=notify unit with WatchdogSec=2: NOTIFY_SOCKET and
// WATCHDOG_USEC in its environment. Its state directory holds a journal
// with a fault an earlier run left behind, which start-up recovery must
// take back before READY=1.
func agentUnderSystemd(t *testing.T, bin string, sock *notifySocket) (cmd *exec.Cmd, stateDir, localSock string) {
	t.Helper()
	dir := t.TempDir()
	pki, err := tlsutil.EnsureDevPKI(filepath.Join(dir, "tls"), "notify-agent")
	if err != nil {
		t.Fatal(err)
	}
	stateDir = filepath.Join(dir, "state")
	if err := os.Mkdir(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	leaveFault(t, filepath.Join(stateDir, agent.JournalFile))
	// Nothing listens on the controller address: the agent keeps trying
	// in the background; READY does not wait for a controller.
	ctrl := freeAddr(t)
	localSock = filepath.Join(dir, "run", "agent.sock")
	cmd = exec.Command(bin, "run", "--controller", ctrl,
		"--ca", pki.Agent.CA, "--cert", pki.Agent.Cert, "--key", pki.Agent.Key,
		"--state-dir", stateDir, "--socket", localSock,
		"--policy", filepath.Join("..", "..", "packaging", "agent.yaml"))
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock.path, "WATCHDOG_USEC="+watchdogUsec)
	cmd.Stderr = &testutil.SyncBuffer{}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("agent's log:\n%s", cmd.Stderr)
		}
	})
	return cmd, stateDir, localSock
}

// leaveFault writes a journal whose CPU fault was journaled (intent) by
// a run that never got further.
func leaveFault(t *testing.T, path string) {
	t.Helper()
	j, _, err := journal.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := proto.Marshal(&turbulencev1.Fault{Id: "f-left", Spec: &turbulencev1.FaultSpec{
		Duration: durationpb.New(time.Hour),
		Kind:     &turbulencev1.FaultSpec_Cpu{Cpu: &turbulencev1.CPUSpec{Cores: 1, LoadPercent: 10}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := j.Append(journal.Record{Op: journal.OpIntent, FaultID: "f-left", Kind: "cpu", At: now, Deadline: now.Add(time.Hour), Fault: f}); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
}

// The agent says READY=1 only once start-up recovery has taken back what
// the journal held and its local socket is served, then pings the
// watchdog from its enforcement loop, and says STOPPING=1 before it exits
// on SIGTERM.
func TestPrivilegedAgent_NotifiesSystemd(t *testing.T) {
	testutil.RequirePrivileged(t)
	bin, _, _ := builtBinaries(t)
	sock := listenNotify(t)
	cmd, stateDir, localSock := agentUnderSystemd(t, bin, sock)

	if msg := sock.next(t, 60*time.Second); msg != "READY=1" {
		t.Fatalf("first notification = %q, want READY=1", msg)
	}
	open, err := journal.ReadFile(filepath.Join(stateDir, agent.JournalFile))
	if err != nil || len(open) != 0 {
		t.Errorf("journal at READY lists %+v (%v); want the leftover fault taken back first", open, err)
	}
	if _, err := os.Stat(localSock); err != nil {
		t.Errorf("local socket at READY: %v; want it served first", err)
	}
	for i := range 3 {
		if msg := sock.next(t, 30*time.Second); msg != "WATCHDOG=1" {
			t.Fatalf("notification %d after READY = %q, want WATCHDOG=1", i+1, msg)
		}
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	var stopping bool
	for !stopping {
		msg := sock.next(t, 30*time.Second)
		switch msg {
		case "STOPPING=1":
			stopping = true
		case "WATCHDOG=1":
		default:
			t.Fatalf("notification after SIGTERM = %q, want WATCHDOG=1 until STOPPING=1", msg)
		}
	}
	if err := <-waitErr; err != nil {
		t.Errorf("agent exit after SIGTERM: %v, want 0", err)
	}
	// Nothing after STOPPING=1: the enforcement loop is over.
	if msg := sock.next(t, 100*time.Millisecond); msg != "" {
		t.Errorf("notification after STOPPING=1 and exit: %q", msg)
	}
}

// A stuck enforcement loop sends no WATCHDOG=1, so systemd restarts the
// agent. A test build's hook stalls the agent's fault Manager for good on
// SIGUSR1, as a deadlock would (agent/testhooks_on.go).
func TestPrivilegedAgent_StuckEnforcementStopsWatchdog(t *testing.T) {
	testutil.RequirePrivileged(t)
	bin := testbuild.BuildWithTags(t, t.TempDir(), "turbulence_testhooks", "./agent/cmd/turbulence-agent")[0]
	sock := listenNotify(t)
	cmd, _, _ := agentUnderSystemd(t, bin, sock)
	if msg := sock.next(t, 60*time.Second); msg != "READY=1" {
		t.Fatalf("first notification = %q, want READY=1", msg)
	}
	if msg := sock.next(t, 30*time.Second); msg != "WATCHDOG=1" {
		t.Fatalf("notification after READY = %q, want WATCHDOG=1", msg)
	}
	if err := cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	for {
		msg := sock.next(t, 30*time.Second)
		if strings.HasPrefix(msg, "STATUS=test hook") {
			break
		}
		if msg != "WATCHDOG=1" {
			t.Fatalf("notification while waiting for the stall = %q", msg)
		}
	}
	// A pass that was past the Manager when it stalled may still ping
	// once; after it, none. Four seconds are four of the agent's ping
	// intervals (and two whole WatchdogSec).
	pings := 0
	for end := time.Now().Add(4 * time.Second); time.Now().Before(end); {
		switch msg := sock.next(t, time.Until(end)); msg {
		case "":
		case "WATCHDOG=1":
			pings++
		default:
			t.Fatalf("notification while stalled = %q", msg)
		}
	}
	if pings > 1 {
		t.Errorf("%d WATCHDOG=1 pings in 4 s with the Manager stalled; want at most the one already under way", pings)
	}
}

// The controller says READY=1 once it serves and STOPPING=1 when it
// begins to stop. It arms no watchdog (controller/cmd/turbulence-controller/systemd.go).
func TestController_NotifiesSystemd(t *testing.T) {
	_, bin, _ := builtBinaries(t)
	sock := listenNotify(t)
	grpcAddr := freeAddr(t)
	cmd := exec.Command(bin, "--dev", "--data-dir", t.TempDir(), "--grpc-addr", grpcAddr, "--raft-addr", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock.path)
	log := &testutil.SyncBuffer{}
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("controller's log:\n%s", log)
		}
	})
	if msg := sock.next(t, 60*time.Second); msg != "READY=1" {
		t.Fatalf("first notification = %q, want READY=1", msg)
	}
	// Serving: its gRPC listener takes connections.
	if c, err := net.Dial("tcp", grpcAddr); err != nil {
		t.Errorf("gRPC address at READY: %v", err)
	} else {
		_ = c.Close()
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if msg := sock.next(t, 30*time.Second); msg != "STOPPING=1" {
		t.Errorf("notification after SIGTERM = %q, want STOPPING=1", msg)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("controller exit after SIGTERM: %v, want 0", err)
	}
}

// freeAddr returns a loopback address nothing listens on (for now).
func freeAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lis.Close() }()
	return lis.Addr().String()
}
