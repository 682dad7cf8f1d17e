package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/turbulence-sre/turbulence/controller/controllertest"
	"github.com/turbulence-sre/turbulence/internal/testutil"
	"github.com/turbulence-sre/turbulence/test/internal/testbuild"
)

// startIn starts the command in network namespace ns (the child inherits
// the namespace of the thread that forks it) and stops it with SIGTERM,
// then waits for it, at t's cleanup. Its output goes to out.
func startIn(t *testing.T, ns netns.NsHandle, out *testutil.SyncBuffer, bin string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	var err error
	testutil.InNS(t, ns, func() { err = cmd.Start() })
	if err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Errorf("%s did not stop within 30s of SIGTERM", filepath.Base(bin))
		}
	})
}

// TestPrivilegedDevControllerServesAnotherHost: a dev controller started
// with --dev-san for its address, in one network namespace, serves an
// agent in another namespace that dials it by that address (issue 17:
// dev certificates covered loopback only), and turbctl reaches it by a
// DNS name given with --dev-san through --tls-server-name. Real
// binaries, as `make build` makes them; addresses from 198.18.0.0/15
// inside namespaces this test made.
func TestPrivilegedDevControllerServesAnotherHost(t *testing.T) {
	testutil.RequirePrivileged(t)
	bins := testbuild.BuildBinaries(t, t.TempDir(), "./controller/cmd/turbulence-controller", "./agent/cmd/turbulence-agent", "./controller/cmd/turbctl")
	controllerBin, agentBin, turbctl := bins[0], bins[1], bins[2]
	p := testutil.NewNSPair(t, 0)
	ctlAddr := p.AddrA.String() + ":7420"

	data := t.TempDir()
	var ctlOut, agentOut testutil.SyncBuffer
	startIn(t, p.A, &ctlOut, controllerBin, "--dev", "--data-dir", data,
		"--grpc-addr", ctlAddr, "--raft-addr", p.AddrA.String()+":7421",
		"--dev-san", p.AddrA.String()+",ctl.example")
	tlsDir := filepath.Join(data, "tls")
	controllertest.WaitFor(t, 30*time.Second, "the dev PKI", func() bool {
		_, err := os.Stat(filepath.Join(tlsDir, "admin.key"))
		return err == nil
	})

	// The agent host: namespace B, dialling the controller's address.
	state := t.TempDir()
	startIn(t, p.B, &agentOut, agentBin, "run", "--controller", ctlAddr,
		"--ca", filepath.Join(tlsDir, "ca.crt"), "--cert", filepath.Join(tlsDir, "agent.crt"), "--key", filepath.Join(tlsDir, "agent.key"),
		"--state-dir", state, "--socket", filepath.Join(t.TempDir(), "run", "agent.sock"))

	// turbctl, also from B: by address, then by the DNS name.
	show := func(extra ...string) (connected bool, out string) {
		args := append([]string{"--controller", ctlAddr, "--ca", filepath.Join(tlsDir, "ca.crt"),
			"--cert", filepath.Join(tlsDir, "admin.crt"), "--key", filepath.Join(tlsDir, "admin.key"), "-o", "json"}, extra...)
		cmd := exec.Command(turbctl, append(args, "agents", "show", "dev-agent")...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		var err error
		testutil.InNS(t, p.B, func() { err = cmd.Start() })
		if err == nil {
			err = cmd.Wait()
		}
		var ag struct {
			Connected bool `json:"connected"`
		}
		_ = json.Unmarshal(stdout.Bytes(), &ag)
		return err == nil && ag.Connected, stdout.String() + stderr.String()
	}
	var last string
	ok := false
	deadline := time.Now().Add(45 * time.Second)
	for !ok && time.Now().Before(deadline) {
		ok, last = show()
		if !ok {
			// A paced retry of a command that takes its own time, not
			// a synchronisation: the condition is re-checked each time.
			time.Sleep(200 * time.Millisecond)
		}
	}
	if !ok {
		t.Fatalf("agent in another namespace never connected to the dev controller at %s; turbctl: %s\ncontroller:\n%s\nagent:\n%s",
			ctlAddr, last, ctlOut.String(), agentOut.String())
	}
	if ok, out := show("--tls-server-name", "ctl.example"); !ok {
		t.Errorf("turbctl with --tls-server-name ctl.example (a --dev-san name): %s", out)
	}
	if ok, out := show("--tls-server-name", "other.example"); ok {
		t.Errorf("turbctl accepted a name the certificate does not carry: %s", out)
	}
}
