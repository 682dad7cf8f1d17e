package worker

import (
	"testing"
	"time"
)

// TestProcessAccount_SplitsWhatNoBurnerUsed: the CPU time the process used
// beyond what its burners published is split evenly among them, and a
// burner ahead of the process clock never makes it negative.
func TestProcessAccount_SplitsWhatNoBurnerUsed(t *testing.T) {
	a, err := newProcessAccount(2)
	if err != nil {
		t.Fatal(err)
	}
	// Use some CPU on this thread, which is no burner.
	start, _ := processCPUTime()
	for x := uint64(1); ; x ^= x << 13 {
		if now, _ := processCPUTime(); now-start > 20*time.Millisecond && x != 0 {
			break
		}
	}
	used, err := processCPUTime()
	if err != nil {
		t.Fatal(err)
	}
	rest := used - a.start
	if got := a.burner(0).overhead(); got < rest/2 || got > rest {
		t.Errorf("overhead with nothing published = %s, want about half of %s", got, rest)
	}
	// The burners claim all of it and more: nothing is left to share.
	a.burner(0).publish(time.Hour)
	a.burner(1).publish(time.Hour)
	if got := a.burner(1).overhead(); got != 0 {
		t.Errorf("overhead when burners account for everything = %s, want 0", got)
	}
}
