package inject

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/agent/journal"
	"github.com/turbulence-sre/turbulence/agent/policy"
)

func openJournal(t *testing.T) *journal.Journal {
	t.Helper()
	j, open, err := journal.OpenFile(filepath.Join(t.TempDir(), "journal"))
	if err != nil || len(open) != 0 {
		t.Fatalf("OpenFile = %v, %v", open, err)
	}
	t.Cleanup(func() { _ = j.Close() })
	return j
}

func openFault(j *journal.Journal, id string) (journal.Open, bool) {
	for _, o := range j.OpenFaults() {
		if o.Intent.FaultID == id {
			return o, true
		}
	}
	return journal.Open{}, false
}

func TestManager_JournalsIntentBeforeApplyAndRevertAfter(t *testing.T) {
	t.Parallel()
	m, inj := newTestManager()
	defer m.Close(ReasonAgentStopping)
	j := openJournal(t)
	m.UseJournal(j)
	inj.block = make(chan struct{})

	applied := make(chan error, 1)
	go func() {
		_, err := m.Apply(t.Context(), cpuFault("f1", time.Minute))
		applied <- err
	}()
	for inj.applyCount() == 0 {
		time.Sleep(time.Millisecond) // waiting for the injector to be entered
	}
	// Inside the injector's Apply: the intent is already on disk.
	if o, ok := openFault(j, "f1"); !ok || o.Applied || o.Intent.Kind != "cpu" || len(o.Intent.Fault) == 0 {
		t.Fatalf("journal while the injector runs: %+v (found %v), want the intent with the fault", o, ok)
	}
	close(inj.block)
	if err := <-applied; err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if o, ok := openFault(j, "f1"); !ok || !o.Applied || !strings.Contains(string(o.Undo), `"worker_pid":4242`) {
		t.Fatalf("journal after apply: %+v (found %v), want applied with worker 4242", o, ok)
	}
	if _, err := m.Revert(t.Context(), "f1", ReasonRevertRequested); err != nil {
		t.Fatal(err)
	}
	if o, ok := openFault(j, "f1"); ok {
		t.Errorf("journal after revert still lists f1: %+v", o)
	}
}

func TestManager_UnjournalableFaultIsRefused(t *testing.T) {
	t.Parallel()
	m, inj := newTestManager()
	defer m.Close(ReasonAgentStopping)
	j := openJournal(t)
	m.UseJournal(j)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := m.Apply(t.Context(), cpuFault("f1", time.Minute))
	if err == nil || !strings.Contains(err.Error(), "journal") {
		t.Fatalf("Apply with a closed journal: err = %v, want a journal error", err)
	}
	if inj.applyCount() != 0 || len(m.Held()) != 0 {
		t.Errorf("applies = %d, held = %v; want nothing applied", inj.applyCount(), m.Held())
	}
}

func TestManager_FailedApplyClosesItsJournalEntry(t *testing.T) {
	t.Parallel()
	m, inj := newTestManager()
	defer m.Close(ReasonAgentStopping)
	j := openJournal(t)
	m.UseJournal(j)
	inj.failWith = errBoom
	if _, err := m.Apply(t.Context(), cpuFault("f1", time.Minute)); !errors.Is(err, errBoom) {
		t.Fatalf("Apply: err = %v, want errBoom", err)
	}
	if o, ok := openFault(j, "f1"); ok {
		t.Errorf("journal lists the failed fault as open: %+v", o)
	}
}

func TestManager_PolicyRefusalsNameRuleAndChangeNothing(t *testing.T) {
	t.Parallel()
	p := policy.Default()
	p.CPU.MaxLoadPercent = 40
	p.MaxConcurrentFaults = 1
	p.MaxNewFaultsPerMinute = 2
	host := policy.Host{TotalMemoryBytes: 8 << 30, CPUs: 4}

	m, inj := newTestManager()
	defer m.Close(ReasonAgentStopping)
	m.UsePolicy(p, host)
	refusal := func(err error) *policy.Refusal {
		var r *policy.Refusal
		if !errors.As(err, &r) {
			t.Fatalf("err = %v, want a *policy.Refusal", err)
		}
		return r
	}

	// 50 % is over the host's 40 % cap.
	_, err := m.Apply(t.Context(), cpuFault("f-hot", time.Minute))
	if r := refusal(err); r.Rule != "cpu.max_load_percent" || !strings.Contains(r.Message, "40") {
		t.Errorf("refusal = %+v, want rule cpu.max_load_percent naming 40", r)
	}
	if inj.applyCount() != 0 {
		t.Fatalf("a refused fault reached the injector")
	}

	low := func(id string) error {
		f := cpuFault(id, time.Minute)
		f.GetSpec().GetCpu().LoadPercent = 30
		_, err := m.Apply(t.Context(), f)
		return err
	}
	if err := low("f1"); err != nil {
		t.Fatalf("Apply within policy: %v", err)
	}
	if r := refusal(low("f2")); r.Rule != "max_concurrent_faults" {
		t.Errorf("second concurrent fault: rule %q, want max_concurrent_faults", r.Rule)
	}
	if _, err := m.Revert(t.Context(), "f1", ReasonRevertRequested); err != nil {
		t.Fatal(err)
	}
	// f1 used one of the two new faults allowed per minute; the refused
	// ones used none.
	if err := low("f3"); err != nil {
		t.Fatalf("Apply after the revert: %v", err)
	}
	if _, err := m.Revert(t.Context(), "f3", ReasonRevertRequested); err != nil {
		t.Fatal(err)
	}
	if r := refusal(low("f4")); r.Rule != "max_new_faults_per_minute" {
		t.Errorf("third new fault in a minute: rule %q, want max_new_faults_per_minute", r.Rule)
	}
	if got := inj.applyCount(); got != 2 {
		t.Errorf("injector applies = %d, want 2 (f1 and f3)", got)
	}
}
