package cli

import (
	"strings"
	"testing"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

var applyArgs = []string{"fault", "apply", "cpu", "--agent", "a1", "--cores", "1", "--load", "50", "--duration", "30s"}

func TestApply_AgentRefusalIsAnError(t *testing.T) {
	t.Parallel()
	h := startFake(t)
	h.fake.refuseWith = "refused by agent policy cpu.max_load_percent: load 50 % is over this host's limit of 40 %"
	r := runCLI(t, h.environ(), applyArgs...)
	r.check(t, ExitRefused, "agent a1 did not apply fault f-42", "cpu.max_load_percent", "40 %")
	if r.stdout != "f-42\n" {
		t.Errorf("stdout = %q, want the fault ID even when refused", r.stdout)
	}
}

func TestApply_NoWaitReturnsPending(t *testing.T) {
	t.Parallel()
	h := startFake(t)
	h.fake.refuseWith = "would be refused" // not seen without --wait
	r := runCLI(t, h.environ(), append([]string{"-o", "json"}, append(applyArgs, "--wait=false")...)...)
	r.check(t, ExitOK)
	if !strings.Contains(r.stdout, "FAULT_STATE_PENDING") {
		t.Errorf("stdout = %s, want the PENDING fault", r.stdout)
	}
}

// TestApply_NoVerdictExitsItsOwnCode: --wait that runs out without the
// agent's verdict is not a success: it exits ExitNoVerdict, still
// printing the ID of the recorded fault (text and JSON alike).
func TestApply_NoVerdictExitsItsOwnCode(t *testing.T) {
	t.Parallel()
	h := startFake(t)
	h.fake.faults["f-42"] = &turbulencev1.Fault{Id: "f-42", AgentId: "a1", State: turbulencev1.FaultState_FAULT_STATE_PENDING}
	r := runCLI(t, h.environ(), append(applyArgs, "--wait-timeout", "50ms")...)
	r.check(t, ExitNoVerdict, "no verdict on fault f-42 within 50ms", "it is PENDING", "is agent a1 connected")
	if r.stdout != "f-42\n" {
		t.Errorf("stdout = %q, want the fault ID", r.stdout)
	}
	r = runCLI(t, h.environ(), append([]string{"-o", "json"}, append(applyArgs, "--wait-timeout", "50ms")...)...)
	r.check(t, ExitNoVerdict, "no verdict on fault f-42")
	if !strings.Contains(r.stdout, `"id": "f-42"`) {
		t.Errorf("stdout = %s, want the fault as JSON", r.stdout)
	}
}

func TestApply_BadWaitTimeout(t *testing.T) {
	t.Parallel()
	h := startFake(t)
	r := runCLI(t, h.environ(), append(applyArgs, "--wait-timeout", "0s")...)
	r.check(t, ExitInvalid, "--wait-timeout must be positive")
	if n := len(h.fake.requests()); n != 0 {
		t.Errorf("%d ApplyFault calls after a usage error, want 0", n)
	}
}
