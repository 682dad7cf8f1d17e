package vmlab_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/turbulence-sre/turbulence/internal/testutil"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
	"github.com/turbulence-sre/turbulence/test/internal/testbuild"
)

// The controller outside the VM: a real turbulence-controller process in
// the lab's namespace, on the bridge's peer address, which the guest
// reaches through its tap.
const (
	sysControllerIP   = "198.18.0.1"
	sysControllerGRPC = sysControllerIP + ":7420"
	sysControllerRaft = sysControllerIP + ":7421"
	// sysAgentID is the name in the guest agent's certificate: its ID.
	sysAgentID = "vm-debian"
)

// sysFleet is the host's side: the controller, the certificates minted
// for this test, and turbctl.
type sysFleet struct {
	t       *testing.T
	ns      netns.NsHandle
	dir     string
	turbctl string
	admin   tlsutil.Files
	agent   tlsutil.Files // the guest agent's, copied into the guest
	logPath string
}

// startFleet mints a CA and the controller's, the guest agent's and an
// admin's certificates, and starts a one-node controller in ns.
func startFleet(t *testing.T, ns netns.NsHandle) *sysFleet {
	t.Helper()
	f := &sysFleet{t: t, ns: ns, dir: t.TempDir()}
	bins := testbuild.BuildBinaries(t, filepath.Join(f.dir, "bin"), "./controller/cmd/turbulence-controller", "./controller/cmd/turbctl")
	f.turbctl = bins[1]

	tlsDir := filepath.Join(f.dir, "tls")
	ca, caPEM, _, err := tlsutil.NewCA("turbulence vmlab CA", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(tlsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	caPath := filepath.Join(tlsDir, "ca.crt")
	if err := os.WriteFile(caPath, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	issue := func(base string, id tlsutil.Identity, ips ...net.IP) tlsutil.Files {
		files, err := ca.IssueFiles(tlsDir, base, caPath, tlsutil.Leaf{Identity: id, IPs: ips, Validity: 24 * time.Hour})
		if err != nil {
			t.Fatalf("certificate %s: %v", base, err)
		}
		return files
	}
	// The agent in the guest checks the controller's certificate against
	// the address it dials.
	ctl := issue("controller", tlsutil.Identity{Role: tlsutil.RoleController, Name: "c1"}, net.ParseIP(sysControllerIP))
	f.agent = issue("agent", tlsutil.Identity{Role: tlsutil.RoleAgent, Name: sysAgentID})
	f.admin = issue("admin", tlsutil.Identity{Role: tlsutil.RoleAdmin, Name: "vmlab-admin"})

	f.logPath = filepath.Join(f.dir, "controller.log")
	logf, err := os.Create(f.logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bins[0], "--node-id", "c1", "--data-dir", filepath.Join(f.dir, "data"),
		"--grpc-addr", sysControllerGRPC, "--raft-addr", sysControllerRaft,
		"--ca", ctl.CA, "--cert", ctl.Cert, "--key", ctl.Key, "--bootstrap-expect", "1")
	cmd.Stdout, cmd.Stderr = logf, logf
	// Should the test binary die, the controller dies with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	testutil.InNS(t, ns, func() { err = cmd.Start() })
	if err != nil {
		_ = logf.Close()
		t.Fatalf("start the controller: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		_ = logf.Close()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			f.logTail()
		}
	})
	f.waitFor(time.Minute, "the controller to serve", func() (bool, string) {
		_, err := f.ctl("agents", "ls", "-o", "json")
		return err == nil, fmt.Sprint(err)
	})
	return f
}

// logTail logs the end of the controller's log.
func (f *sysFleet) logTail() {
	b, _ := os.ReadFile(f.logPath)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	f.t.Logf("controller log tail:\n%s", strings.Join(lines, "\n"))
}

// ctl runs turbctl (the binary, as an operator does) against the
// controller, from inside the lab's namespace, and returns its stdout.
func (f *sysFleet) ctl(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	global := []string{"--controller", sysControllerGRPC, "--ca", f.admin.CA, "--cert", f.admin.Cert, "--key", f.admin.Key}
	cmd := exec.CommandContext(ctx, f.turbctl, append(global, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	var err error
	testutil.InNS(f.t, f.ns, func() { err = cmd.Start() })
	if err == nil {
		err = cmd.Wait()
	}
	if err != nil {
		return stdout.Bytes(), fmt.Errorf("turbctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// agent returns the controller's view of the guest agent, nil if it does
// not know it.
func (f *sysFleet) agentState() (*turbulencev1.Agent, error) {
	out, err := f.ctl("agents", "ls", "-o", "json")
	if err != nil {
		return nil, err
	}
	var resp turbulencev1.ListAgentsResponse
	if err := protojson.Unmarshal(out, &resp); err != nil {
		return nil, err
	}
	for _, a := range resp.GetAgents() {
		if a.GetId() == sysAgentID {
			return a, nil
		}
	}
	return nil, nil
}

// waitConnected waits until the controller has a session with the guest
// agent.
func (f *sysFleet) waitConnected(vm *sysVM) time.Duration {
	f.t.Helper()
	start := time.Now()
	f.waitForVM(vm, 2*time.Minute, "the guest agent to connect to the controller", func() (bool, string) {
		a, err := f.agentState()
		if err != nil {
			return false, err.Error()
		}
		return a != nil && a.GetConnected(), fmt.Sprintf("agent %v", a)
	})
	return time.Since(start)
}

// applyCPU applies a CPU fault on the guest agent with turbctl and
// returns its ID once the agent has accepted it.
func (f *sysFleet) applyCPU(vm *sysVM) string {
	f.t.Helper()
	out, err := f.ctl("fault", "apply", "cpu", "--agent", sysAgentID, "--cores", "1", "--load", "10", "--duration", "10m", "-o", "json")
	if err != nil {
		f.logTail()
		vm.fatalf("%v", err)
	}
	var flt turbulencev1.Fault
	if err := protojson.Unmarshal(out, &flt); err != nil {
		vm.fatalf("turbctl's fault %q: %v", out, err)
	}
	return flt.GetId()
}

// fault returns the controller's view of fault id.
func (f *sysFleet) fault(id string) (*turbulencev1.Fault, error) {
	out, err := f.ctl("fault", "show", id, "-o", "json")
	if err != nil {
		return nil, err
	}
	var flt turbulencev1.Fault
	if err := protojson.Unmarshal(out, &flt); err != nil {
		return nil, err
	}
	return &flt, nil
}

// waitFor polls cond until it holds or limit has passed; cond's string
// says what it saw, for the failure.
func (f *sysFleet) waitFor(limit time.Duration, what string, cond func() (bool, string)) {
	f.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ok, saw := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			f.logTail()
			f.t.Fatalf("waited %s for %s; last saw: %s", limit, what, saw)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitForVM is waitFor with the guest's console in the failure.
func (f *sysFleet) waitForVM(vm *sysVM, limit time.Duration, what string, cond func() (bool, string)) {
	f.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ok, saw := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			f.logTail()
			vm.fatalf("waited %s for %s; last saw: %s", limit, what, saw)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
