package cli

import (
	"strings"
	"testing"
	"time"

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

// TestApply_VerdictIsPushed: --wait returns on the event that carries the
// agent's verdict, not on a later poll. The poll interval is an hour
// here, so a turbctl that polled would run out of --wait-timeout and
// exit ExitNoVerdict.
func TestApply_VerdictIsPushed(t *testing.T) {
	t.Parallel()
	h := startFake(t)
	h.fake.faults["f-42"] = &turbulencev1.Fault{Id: "f-42", AgentId: "a1", State: turbulencev1.FaultState_FAULT_STATE_PENDING}
	h.fake.watching = make(chan struct{}, 1)
	done := make(chan result, 1)
	go func() {
		done <- runCLIWith(t, h.environ(), func(e *env) { e.poll = time.Hour }, append(applyArgs, "--wait-timeout", "20s")...)
	}()
	select {
	case <-h.fake.watching:
	case r := <-done:
		t.Fatalf("turbctl returned before following the events: exit %d\n%s", r.code, r.stderr)
	}
	h.fake.setVerdict("f-42", turbulencev1.FaultState_FAULT_STATE_ACTIVE, "fault.active")
	r := <-done
	r.check(t, ExitOK)
	if r.stdout != "f-42\n" {
		t.Errorf("stdout = %q, want the fault ID", r.stdout)
	}
}

// TestApply_VerdictBeforeWatchIsSeen: a verdict committed before turbctl
// opens its event stream is not missed: the stream starts at the fault's
// creation event, not at "now".
func TestApply_VerdictBeforeWatchIsSeen(t *testing.T) {
	t.Parallel()
	h := startFake(t)
	// The fake commits created and active within ApplyFault, before the
	// stream opens.
	r := runCLIWith(t, h.environ(), func(e *env) { e.poll = time.Hour }, append(applyArgs, "--wait-timeout", "20s")...)
	r.check(t, ExitOK)
}

// TestApplyHelp_SaysItWaits: the help of every kind tells that apply
// waits for the verdict, not that the fault "starts PENDING" and returns.
func TestApplyHelp_SaysItWaits(t *testing.T) {
	t.Parallel()
	r := runCLI(t, nil, "fault", "apply", "--help")
	r.check(t, ExitOK)
	for _, want := range []string{"waits for the agent's verdict", "--wait=false"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("fault apply --help does not say %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "starts PENDING") {
		t.Errorf("fault apply --help still says the fault starts PENDING:\n%s", r.stdout)
	}
}
