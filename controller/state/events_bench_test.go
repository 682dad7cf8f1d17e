package state

import (
	"fmt"
	"testing"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// BenchmarkApplySetHalt halts a fleet of n live faults, on a state whose
// event log is already at MaxEvents: one entry, n events (issue 15
// measured 420 ms for 10,000 when every event copied the log).
func BenchmarkApplySetHalt(b *testing.B) {
	for _, n := range []int{3000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				s := New()
				for range MaxEvents {
					s.d.appendEvent(t0, EventAgentRegistered, "filler", "", "filler")
				}
				if _, err := s.ApplyRegisterAgent(meta(""), &turbulencev1.Agent{Id: "a1"}); err != nil {
					b.Fatal(err)
				}
				for i := range n {
					if _, err := s.ApplyCreateFault(meta(""), newFault(fmt.Sprintf("f%05d", i), "a1")); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				if _, err := s.ApplySetHalt(meta(""), true, "bench"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAppendEventFull appends to an event log at MaxEvents.
func BenchmarkAppendEventFull(b *testing.B) {
	s := New()
	for range MaxEvents {
		s.d.appendEvent(t0, EventAgentRegistered, "filler", "", "filler")
	}
	for b.Loop() {
		s.d.appendEvent(t0, EventAgentRegistered, "a1", "", "bench")
	}
}
