package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/agent/localapi"
)

// fakeAgent is the agent behind the socket, reduced to a halt flag and
// one CPU fault.
type fakeAgent struct {
	mu     sync.Mutex
	halted bool
	reason string
	since  time.Time
	faults []localapi.Fault
}

func (f *fakeAgent) Status(context.Context) localapi.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := localapi.Status{AgentID: "web-1", Hostname: "web-1.example", FleetHalted: true, LocallyHalted: f.halted, LocalHaltReason: f.reason, Faults: append([]localapi.Fault{}, f.faults...)}
	if f.halted {
		st.LocalHaltSince = &f.since
	}
	return st
}

func (f *fakeAgent) Halt(_ context.Context, reason string) []localapi.Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.halted, f.reason, f.since = true, reason, time.Now().Add(-90*time.Second)
	out := f.faults
	for i := range out {
		out[i].State, out[i].Reason = "reverted", "local halt"
	}
	f.faults = nil
	return out
}

func (f *fakeAgent) Resume(context.Context) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	was := f.halted
	f.halted = false
	return was, nil
}

// serveFake serves a fakeAgent on a fresh socket until the test ends.
func serveFake(t *testing.T) string {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the local socket checks SO_PEERCRED (Linux)")
	}
	dir, err := os.MkdirTemp("", "tla")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	path := filepath.Join(dir, "run", "agent.sock")
	deadline := time.Now().Add(time.Hour)
	s, err := localapi.Listen(localapi.Config{Path: path, Backend: &fakeAgent{faults: []localapi.Fault{
		{ID: "f1", Kind: "cpu", State: "active", Deadline: &deadline, MeasuredCPUPercent: 49.6, WorkerPID: 4242},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return path
}

func runLocalT(t *testing.T, op string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = runLocal(op, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestLocalCommands_StatusHaltResume(t *testing.T) {
	t.Parallel()
	sock := serveFake(t)

	code, out, errOut := runLocalT(t, "status", "--socket", sock)
	if code != exitOK {
		t.Fatalf("status = %d, stderr %q", code, errOut)
	}
	for _, want := range []string{
		"Agent:       web-1\n", "Controller:  none (not connected)\n", "Fleet halt:  yes\n", "Local halt:  no\n",
		"ID", "f1  cpu   active", "49.6% cpu", "4242",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}

	code, out, errOut = runLocalT(t, "status", "--socket", sock, "-o", "json")
	var st localapi.Status
	if code != exitOK || json.Unmarshal([]byte(out), &st) != nil || st.AgentID != "web-1" || len(st.Faults) != 1 {
		t.Errorf("status -o json = %d, %q (stderr %q), want the status as JSON", code, out, errOut)
	}

	code, out, errOut = runLocalT(t, "halt", "--socket", sock, "--reason", "checkout SLO burn")
	if code != exitOK {
		t.Fatalf("halt = %d, stderr %q", code, errOut)
	}
	wantHalt := "Halted locally: 1 fault reverted.\n  f1  cpu  reverted (local halt)\nNew faults are refused until `turbulence-agent resume` on this host.\n"
	if out != wantHalt {
		t.Errorf("halt output = %q, want %q", out, wantHalt)
	}
	_, out, _ = runLocalT(t, "status", "--socket", sock)
	if !strings.Contains(out, "Local halt:  yes, since ") || !strings.Contains(out, "(1m30s ago): checkout SLO burn") || !strings.Contains(out, "Faults:      none held") {
		t.Errorf("status after halt:\n%s", out)
	}

	code, out, _ = runLocalT(t, "resume", "--socket", sock)
	if want := "Local halt lifted.\nThe fleet halt still holds: new faults stay refused until `turbctl resume`.\n"; code != exitOK || out != want {
		t.Errorf("resume = %d, %q; want 0, %q", code, out, want)
	}
	_, out, _ = runLocalT(t, "resume", "--socket", sock)
	if !strings.HasPrefix(out, "The agent was not halted locally") {
		t.Errorf("second resume = %q", out)
	}
}

func TestLocalCommands_NoAgentAndUsage(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "agent.sock")
	for _, op := range []string{"status", "halt", "resume"} {
		var stderr bytes.Buffer
		// Through run: the dispatch reaches the local commands.
		if code := run([]string{op, "--socket", missing}, &stderr); code != exitFailure {
			t.Errorf("%s with no agent = %d, want %d", op, code, exitFailure)
		}
		if want := "agent not running or socket at " + missing + " not found"; !strings.Contains(stderr.String(), want) {
			t.Errorf("%s with no agent: stderr %q lacks %q", op, stderr.String(), want)
		}
	}
	for _, tc := range []struct {
		op   string
		args []string
	}{
		{"status", []string{"extra"}},
		{"status", []string{"-o", "yaml"}},
		{"halt", []string{"--reason"}},
		{"resume", []string{"--reason", "x"}},
		{"halt", []string{"--nope"}},
	} {
		if code, _, errOut := runLocalT(t, tc.op, tc.args...); code != exitUsage {
			t.Errorf("%s %q = %d, want %d (stderr %q)", tc.op, tc.args, code, exitUsage, errOut)
		}
	}
}
