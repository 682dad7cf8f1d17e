package agentapi

import (
	"slices"
	"testing"
	"time"
)

// TestDeparted: an agent counts as departed only with no session and
// nothing heard for the whole age, counted from this leadership's start
// at the earliest.
func TestDeparted(t *testing.T) {
	t.Parallel()
	h := New(Config{})
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	h.soft("heard-recently").LastSeen = now.Add(-10 * time.Minute)
	h.soft("ended-recently").disconnectedAt = now.Add(-10 * time.Minute)
	h.soft("long-gone").LastSeen = now.Add(-3 * time.Hour)
	h.soft("connected").LastSeen = now.Add(-3 * time.Hour)
	h.sessions["connected"] = &session{}
	ids := []string{"connected", "ended-recently", "heard-recently", "long-gone", "never-heard"}

	if got := h.Departed(ids, now.Add(-2*time.Hour), now, time.Hour); !slices.Equal(got, []string{"long-gone", "never-heard"}) {
		t.Errorf("Departed after a 2h leadership = %v, want [long-gone never-heard]", got)
	}
	// A leadership younger than the age calls nobody departed.
	if got := h.Departed(ids, now.Add(-30*time.Minute), now, time.Hour); len(got) != 0 {
		t.Errorf("Departed after a 30m leadership = %v, want none", got)
	}
	h.Forget([]string{"long-gone", "connected"})
	if _, ok := h.agents["long-gone"]; ok {
		t.Error("Forget kept long-gone's soft state")
	}
	if _, ok := h.agents["connected"]; !ok {
		t.Error("Forget dropped the soft state of an agent with a session")
	}
}
