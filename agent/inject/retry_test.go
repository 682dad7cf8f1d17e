package inject

import (
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// TestManager_FailedRevertIsRetriedAndNeverReportedClean: a revert that
// fails leaves the fault held and REVERTING with the error, the revert
// command gets an error (not ok), and the retries with backoff end it as
// REVERTED once the host lets go.
func TestManager_FailedRevertIsRetriedAndNeverReportedClean(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		m, inj := newTestManager()
		defer m.Close(ReasonAgentStopping)
		if _, err := m.Apply(t.Context(), cpuFault("f1", time.Hour)); err != nil {
			t.Fatalf("Apply: %v", err)
		}
		inj.failNextReverts("f1", 3)

		st, err := m.Revert(t.Context(), "f1", ReasonRevertRequested)
		if !errors.Is(err, ErrRevertFailed) {
			t.Fatalf("Revert error = %v, want ErrRevertFailed", err)
		}
		if st.GetState() != turbulencev1.FaultState_FAULT_STATE_REVERTING || !strings.Contains(st.GetReason(), errRevertBoom.Error()) {
			t.Errorf("status after a failed revert = %v %q, want REVERTING naming the error", st.GetState(), st.GetReason())
		}
		held, ended, _ := m.Report()
		if len(held) != 1 || held[0].GetState() != turbulencev1.FaultState_FAULT_STATE_REVERTING || len(ended) != 0 {
			t.Fatalf("report after a failed revert: held %v, ended %v; want f1 held REVERTING, nothing ended", held, ended)
		}

		// Two more failures (1 s, then 2 s later), then success 4 s later.
		time.Sleep(retryFirst + 2*retryFirst)
		synctest.Wait()
		if got := inj.handle("f1").revertCount(); got != 3 {
			t.Fatalf("reverts after 3 s = %d, want 3 (first try and two retries)", got)
		}
		if len(m.Held()) != 1 {
			t.Fatal("fault reported gone while its revert still fails")
		}
		time.Sleep(4 * retryFirst)
		synctest.Wait()
		held, ended, _ = m.Report()
		if len(held) != 0 || len(ended) != 1 {
			t.Fatalf("report after the revert succeeded: held %v, ended %v; want f1 ended", held, ended)
		}
		if got := ended[0]; got.GetState() != turbulencev1.FaultState_FAULT_STATE_REVERTED ||
			got.GetReason() != ReasonRevertRequested+" (reverted at attempt 4)" {
			t.Errorf("ended = %v %q, want REVERTED at attempt 4", got.GetState(), got.GetReason())
		}
		// Idempotent from here: the recorded status, no error.
		if st, err := m.Revert(t.Context(), "f1", ReasonRevertRequested); err != nil || st.GetState() != turbulencev1.FaultState_FAULT_STATE_REVERTED {
			t.Errorf("second Revert = %v, %v; want the REVERTED record", st, err)
		}
	})
}

// TestManager_CloseStopsRetriesAndKeepsTheJournalRecord: an agent stopping
// with a fault it cannot revert stops retrying (no goroutine left behind)
// and leaves the fault to the journal: its record stays open.
func TestManager_CloseStopsRetriesAndKeepsTheJournalRecord(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		m, inj := newTestManager()
		j := openJournal(t)
		m.UseJournal(j, "/proc")
		if _, err := m.Apply(t.Context(), cpuFault("f1", time.Hour)); err != nil {
			t.Fatalf("Apply: %v", err)
		}
		inj.failNextReverts("f1", 1000)
		m.Close(ReasonAgentStopping) // returns: retries stop, watchers end
		synctest.Wait()
		if got := inj.handle("f1").revertCount(); got != 1 {
			t.Errorf("reverts = %d, want the one attempt Close made", got)
		}
		if _, open := openFault(j, "f1"); !open {
			t.Error("journal record of the unreverted fault was closed; cleanup would never retry it")
		}
	})
}
