package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/agent"
	"github.com/turbulence-sre/turbulence/agent/policy"
	"github.com/turbulence-sre/turbulence/controller/cli"
	"github.com/turbulence-sre/turbulence/controller/controllertest"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

const (
	stateActive   = turbulencev1.FaultState_FAULT_STATE_ACTIVE
	stateReverted = turbulencev1.FaultState_FAULT_STATE_REVERTED
	waitLong      = 20 * time.Second
)

// applyCPU applies a one-core CPU fault through turbctl and returns its ID
// once the agent reports the worker running.
func (f *fleet) applyCPU(t *testing.T, load, duration string) (id string, pid int32) {
	t.Helper()
	code, id, stderr := f.turbctl(t, "fault", "apply", "cpu", "--agent", f.agent.ID(),
		"--cores", "1", "--load", load, "--duration", duration)
	if code != cli.ExitOK || id == "" {
		t.Fatalf("turbctl fault apply cpu: exit %d, id %q, stderr:\n%s", code, id, stderr)
	}
	controllertest.WaitFor(t, waitLong, "the worker of "+id+" to run", func() bool {
		st := f.held(id)
		pid = st.GetWorkerPid()
		return st.GetState() == stateActive && pid > 0
	})
	if !alive(pid) {
		t.Fatalf("fault %s: worker %d reported but not alive", id, pid)
	}
	return id, pid
}

// waitReverted waits until the controller records fault id as reverted
// and returns it.
func (f *fleet) waitReverted(t *testing.T, id string) *turbulencev1.Fault {
	t.Helper()
	var flt *turbulencev1.Fault
	controllertest.WaitFor(t, waitLong, "the controller to record "+id+" reverted", func() bool {
		flt = f.fault(t, id)
		return flt.GetState() == stateReverted
	})
	return flt
}

// The walking skeleton's promise: turbctl → raft controller → agent →
// worker, and the agent itself takes the fault back at its deadline.
func TestCPUFault_AppliedThenRevertedAtDeadline(t *testing.T) {
	f := startFleet(t)
	id, pid := f.applyCPU(t, "50", "2s")

	// The controller learns of the worker through the agent's heartbeats.
	controllertest.WaitFor(t, waitLong, "the controller to see "+id+" active", func() bool {
		flt := f.fault(t, id)
		return flt.GetState() == stateActive && flt.GetStatus().GetWorkerPid() == pid
	})
	if !alive(pid) {
		t.Fatalf("worker %d gone while the fault is active", pid)
	}

	flt := f.waitReverted(t, id)
	if alive(pid) {
		t.Errorf("worker %d alive after the deadline", pid)
	}
	if flt.GetReason() != "deadline" {
		t.Errorf("reason = %q, want %q", flt.GetReason(), "deadline")
	}
	if end, dl := flt.GetEndedAt().AsTime(), flt.GetDeadline().AsTime(); end.Before(dl) {
		t.Errorf("ended at %s, before the deadline %s", end, dl)
	}

	code, out, stderr := f.turbctl(t, "fault", "show", id, "-o", "json")
	if code != cli.ExitOK || !strings.Contains(out, "FAULT_STATE_REVERTED") {
		t.Errorf("turbctl fault show: exit %d, stdout:\n%s\nstderr:\n%s", code, out, stderr)
	}
}

func TestCPUFault_RevertedByTurbctl(t *testing.T) {
	f := startFleet(t)
	id, pid := f.applyCPU(t, "30", "10m")
	if code, _, stderr := f.turbctl(t, "fault", "revert", id); code != cli.ExitOK {
		t.Fatalf("turbctl fault revert: exit %d:\n%s", code, stderr)
	}
	flt := f.waitReverted(t, id)
	if alive(pid) {
		t.Errorf("worker %d alive after the revert", pid)
	}
	if flt.GetReason() == "deadline" {
		t.Errorf("reason = %q, want the revert request", flt.GetReason())
	}
}

func TestHalt_RevertsAndRefusesUntilResume(t *testing.T) {
	f := startFleet(t)
	id, pid := f.applyCPU(t, "30", "10m")
	if code, _, stderr := f.turbctl(t, "halt", "--reason", "e2e"); code != cli.ExitOK {
		t.Fatalf("turbctl halt: exit %d:\n%s", code, stderr)
	}
	f.waitReverted(t, id)
	if alive(pid) {
		t.Errorf("worker %d alive after the halt", pid)
	}

	code, _, stderr := f.turbctl(t, "fault", "apply", "cpu", "--agent", f.agent.ID(), "--cores", "1", "--load", "10", "--duration", "10s")
	if code != cli.ExitRefused || !strings.Contains(stderr, "turbctl resume") {
		t.Errorf("apply while halted: exit %d (want %d), stderr:\n%s", code, cli.ExitRefused, stderr)
	}
	if code, _, stderr := f.turbctl(t, "resume"); code != cli.ExitOK {
		t.Fatalf("turbctl resume: exit %d:\n%s", code, stderr)
	}
	f.applyCPU(t, "10", "10s")
}

func TestApply_UnknownAgentRecordsNothing(t *testing.T) {
	f := startFleet(t)
	code, _, stderr := f.turbctl(t, "fault", "apply", "cpu", "--agent", "no-such-agent", "--cores", "1", "--load", "10", "--duration", "10s")
	if code != cli.ExitNotFound || !strings.Contains(stderr, "no-such-agent") {
		t.Errorf("exit %d (want %d), stderr:\n%s", code, cli.ExitNotFound, stderr)
	}
	list, err := f.api.ListFaults(t.Context(), &turbulencev1.ListFaultsRequest{})
	if err != nil || len(list.GetFaults()) != 0 {
		t.Errorf("ListFaults = %v, %v; want none", list.GetFaults(), err)
	}
}

// The host's policy has the last word, and its refusal reaches the person
// at turbctl naming the rule and the limit.
func TestApply_PolicyRefusalReachesTurbctl(t *testing.T) {
	f := startFleet(t, func(c *agent.Config) {
		p := policy.Default()
		p.CPU.MaxLoadPercent = 40
		c.Policy = &p
	})
	code, out, stderr := f.turbctl(t, "fault", "apply", "cpu", "--agent", f.agent.ID(), "--cores", "1", "--load", "50", "--duration", "30s")
	if code != cli.ExitRefused {
		t.Fatalf("exit %d, want %d (refused); stderr:\n%s", code, cli.ExitRefused, stderr)
	}
	for _, want := range []string{"cpu.max_load_percent", "40 %"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr does not name %q:\n%s", want, stderr)
		}
	}
	if flt := f.fault(t, out); flt.GetState() != turbulencev1.FaultState_FAULT_STATE_FAILED {
		t.Errorf("fault %s state = %v, want FAILED", out, flt.GetState())
	}
	if held := f.agent.Faults(); len(held) != 0 {
		t.Errorf("agent holds %v after a refusal", held)
	}
}
