package inject

import (
	"testing"
	"time"
)

// The enforcement loop's backstop ends what is past its deadline, for
// the deadline, and leaves the rest.
func TestManager_EndOverdueEndsOnlyPastDeadline(t *testing.T) {
	t.Parallel()
	m, inj := newTestManager()
	defer m.Close(ReasonAgentStopping)
	for _, f := range []struct {
		id string
		d  time.Duration
	}{{"short", time.Minute}, {"long", time.Hour}} {
		if _, err := m.Apply(t.Context(), cpuFault(f.id, f.d)); err != nil {
			t.Fatalf("Apply %s: %v", f.id, err)
		}
	}
	// As if the timers of faults due within two minutes had not fired.
	if n := m.EndOverdue(time.Now().Add(2 * time.Minute)); n != 1 {
		t.Fatalf("EndOverdue ended %d faults, want 1", n)
	}
	if got := inj.handle("short").revertCount(); got != 1 {
		t.Errorf("short fault reverted %d times, want 1", got)
	}
	if got := inj.handle("long").revertCount(); got != 0 {
		t.Errorf("long fault reverted %d times, want 0", got)
	}
	if st := m.endedStatus("short"); st.GetState() != stateReverted || st.GetReason() != ReasonDeadline {
		t.Errorf("short fault = %v, want REVERTED for %q", st, ReasonDeadline)
	}
	// Ended once: a second pass finds nothing.
	if n := m.EndOverdue(time.Now().Add(2 * time.Minute)); n != 0 {
		t.Errorf("second EndOverdue ended %d faults, want 0", n)
	}
}
