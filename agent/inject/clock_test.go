package inject

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"
)

// TestManager_DeadlineOnClocksNoStepMoves: the controller's wall-clock
// deadline becomes, on arrival, a deadline on the monotonic clock in the
// Manager and one on the boot clock in the journal's intent record, which
// the fault's guardian judges (docs/design.md, "Clocks"); the record
// keeps the wall-clock one too. Without them the timer's backstop and
// the guardian would judge the wall clock, which a step moves.
func TestManager_DeadlineOnClocksNoStepMoves(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the boot clock is Linux's")
	}
	t.Parallel()
	m, _ := newTestManager()
	defer m.Close(ReasonAgentStopping)
	j := openJournal(t)
	m.UseJournal(j)
	f := cpuFault("f-boot", time.Minute)
	wall := time.Now().Add(30 * time.Second)
	f.Deadline = timestamppb.New(wall) // the controller's, before now + duration
	if _, err := m.Apply(t.Context(), f); err != nil {
		t.Fatal(err)
	}
	// The deadline the Manager holds, which its timer and EndOverdue
	// compare with the present, must carry a monotonic reading: without
	// one, time's comparisons fall back to the wall clock, and a step of
	// it would end the fault early (forward) or late (back). A time's
	// String ends with "m=±…" exactly when it carries one.
	m.mu.Lock()
	held := m.held["f-boot"].deadline
	m.mu.Unlock()
	if !strings.Contains(held.String(), " m=") {
		t.Errorf("the held deadline %v has no monotonic reading: a step of the wall clock would move it", held)
	}
	o, ok := openFault(j, "f-boot")
	if !ok {
		t.Fatal("no intent record for the fault")
	}
	if o.Intent.Deadline.UnixNano() != wall.UnixNano() {
		t.Errorf("intent deadline %v, want the controller's %v", o.Intent.Deadline, wall)
	}
	left, ok := o.Intent.BootDeadline.Until()
	// Between Apply and this read only the test's own calls run; a
	// second is a bound no scheduler delay reaches.
	if !ok || left > 30*time.Second || left < 29*time.Second {
		t.Errorf("intent boot deadline %+v is %v (%v) away, want about 30 s", o.Intent.BootDeadline, left, ok)
	}
}
