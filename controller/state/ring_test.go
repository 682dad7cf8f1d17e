package state

import (
	"testing"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// TestEventRing_WrapsInOrder: past its bound the ring keeps exactly the
// latest MaxEvents, oldest first, for every reader (Events, EventsPage,
// snapshot and restore), wherever the circle's seam falls.
func TestEventRing_WrapsInOrder(t *testing.T) {
	t.Parallel()
	const extra = MaxEvents/2 + 7 // the seam in the middle of the array
	s := New()
	for i := range MaxEvents + extra {
		typ := EventAgentRegistered
		if i%2 == 1 {
			typ = EventFleetHalted
		}
		s.mu.Lock()
		s.d.appendEvent(t0, typ, "a1", "", "x")
		s.mu.Unlock()
	}
	check := func(name string, evs []*turbulencev1.Event, first uint64, n int) {
		t.Helper()
		if len(evs) != n {
			t.Fatalf("%s: %d events, want %d", name, len(evs), n)
		}
		for i, e := range evs {
			if want := first + uint64(i); e.GetSequence() != want {
				t.Fatalf("%s: event %d has sequence %d, want %d", name, i, e.GetSequence(), want)
			}
		}
	}
	oldest := uint64(extra + 1)
	check("Events(0, 0)", s.Events(0, 0), oldest, MaxEvents)
	check("Events across the seam", s.Events(uint64(MaxEvents), 10), MaxEvents+1, 10)
	check("Events(last-1)", s.Events(uint64(MaxEvents+extra-1), 0), uint64(MaxEvents+extra), 1)
	check("Events(last)", s.Events(uint64(MaxEvents+extra), 0), 0, 0)

	page, more := s.EventsPage(EventFilter{Type: EventFleetHalted}, uint64(MaxEvents-3), 4)
	if !more || len(page) != 4 {
		t.Fatalf("EventsPage: %d events, more %v; want 4 and more", len(page), more)
	}
	for i, e := range page {
		if e.GetType() != EventFleetHalted || (i > 0 && e.GetSequence() != page[i-1].GetSequence()+2) {
			t.Fatalf("EventsPage[%d] = %d %s: not every other event across the seam", i, e.GetSequence(), e.GetType())
		}
	}

	restored := New()
	if err := restored.Replace(s.Records()); err != nil {
		t.Fatal(err)
	}
	check("restored Events(0, 0)", restored.Events(0, 0), oldest, MaxEvents)
	restored.mu.Lock()
	restored.d.appendEvent(t0, EventAgentRegistered, "a1", "", "after restore")
	restored.mu.Unlock()
	check("restored, one more", restored.Events(0, 0), oldest+1, MaxEvents)
}
