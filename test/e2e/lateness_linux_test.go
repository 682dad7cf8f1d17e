package e2e

import (
	"testing"
	"time"
)

// TestPrivilegedLateness_AgentTakesBackWhatItMade: for every kind, a fault
// of one second applied through the controller ends on its own, by its
// deadline, and its effect leaves the host — seen by the kernel (the
// qdisc or table deleted, the fill's directory removed, the worker
// exited), not by the agent's word. Network, partition and disk fill have
// no worker: if the agent's revert timer did not fire, their effect would
// stay and this test would fail. How late is a benchmark's figure
// (BenchmarkLateness), not asserted here.
func TestPrivilegedLateness_AgentTakesBackWhatItMade(t *testing.T) {
	e := startEffectFleet(t)
	for _, k := range effectKinds {
		t.Run(k.name, func(t *testing.T) {
			late, reason := e.lifetime(t, k, time.Second)
			if reason != "deadline" {
				t.Errorf("%s: the agent recorded reason %q, want %q", k.name, reason, "deadline")
			}
			t.Logf("%s: effect gone %v after the deadline", k.name, late)
		})
	}
}
