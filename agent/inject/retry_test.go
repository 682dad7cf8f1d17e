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
		m.UseJournal(j)
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

// TestManager_LostUndoRecordTakesTheFaultBack: when the journal cannot
// record how to revert a fault whose revert needs more than its worker (an
// interface's original qdisc tree), the fault is taken back at once and
// refused: after a crash nothing would know how to restore the host.
func TestManager_LostUndoRecordTakesTheFaultBack(t *testing.T) {
	t.Parallel()
	m, inj := newTestManager()
	defer m.Close(ReasonAgentStopping)
	j := openJournal(t)
	m.UseJournal(j)
	// Undo data over the journal's record size limit: the append fails.
	inj.undo = oversizedUndo()

	st, err := m.Apply(t.Context(), cpuFault("f1", time.Hour))
	if err == nil || !strings.Contains(err.Error(), "record how to revert it in the journal") {
		t.Fatalf("Apply = %v, %v; want refused because the undo record was lost", st, err)
	}
	if got := inj.handle("f1").revertCount(); got != 1 {
		t.Errorf("reverts = %d, want the fault taken back once", got)
	}
	if held := m.Held(); len(held) != 0 {
		t.Errorf("held after the refusal: %v", held)
	}
	if _, open := openFault(j, "f1"); open {
		t.Error("journal still lists f1 open after it was taken back")
	}
}

// TestManager_LostUndoRecordAndFailedTakeBackIsReportedReverting: when the
// journal loses a fault's undo data and taking it back fails too, the
// fault is on the host: Apply reports it REVERTING (not a clean refusal)
// and the retries end it as REVERTED.
func TestManager_LostUndoRecordAndFailedTakeBackIsReportedReverting(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		m, inj := newTestManager()
		defer m.Close(ReasonAgentStopping)
		m.UseJournal(openJournal(t))
		inj.undo = oversizedUndo()
		inj.failReverts = 2 // the take-back in Apply, then the first revert

		st, err := m.Apply(t.Context(), cpuFault("f1", time.Hour))
		if err != nil {
			t.Fatalf("Apply = %v; want the fault reported, not refused: it is still on the host", err)
		}
		if st.GetState() != turbulencev1.FaultState_FAULT_STATE_REVERTING || !strings.Contains(st.GetReason(), "record how to revert it in the journal") {
			t.Errorf("status = %v %q, want REVERTING saying the journal lost it", st.GetState(), st.GetReason())
		}
		time.Sleep(retryFirst)
		synctest.Wait()
		_, ended, _ := m.Report()
		if len(ended) != 1 || ended[0].GetState() != turbulencev1.FaultState_FAULT_STATE_REVERTED {
			t.Fatalf("ended after the retry = %v, want f1 REVERTED", ended)
		}
	})
}

// oversizedDirs is undo data over the journal's record size limit, so that
// recording it fails.
// oversizedUndo is an undo record over the journal's record size limit.
func oversizedUndo() []byte {
	return []byte(`"` + strings.Repeat("x", 2<<20) + `"`)
}
