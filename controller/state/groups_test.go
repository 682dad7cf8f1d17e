package state

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// BenchmarkApplyCreateFaultGroup1000 records a group of 1,000 members on a
// state that already holds 20,000 faults.
func BenchmarkApplyCreateFaultGroup1000(b *testing.B) {
	s := New()
	for i := range 1000 {
		if _, err := s.ApplyRegisterAgent(meta(""), &turbulencev1.Agent{Id: fmt.Sprintf("a%04d", i)}); err != nil {
			b.Fatal(err)
		}
	}
	for i := range 20000 {
		if _, err := s.ApplyCreateFault(meta(""), newFault(fmt.Sprintf("old-%05d", i), "a0000")); err != nil {
			b.Fatal(err)
		}
	}
	n := 0
	for b.Loop() {
		n++
		// Later than every fault before it, as a leader's clock makes it.
		g := &turbulencev1.FaultGroup{Id: fmt.Sprintf("g%d", n), Spec: newFault("x", "y").GetSpec(), CreatedAt: timestamppb.New(t0.Add(time.Duration(n) * time.Second))}
		for i := range 1000 {
			g.Members = append(g.Members, &turbulencev1.GroupMember{AgentId: fmt.Sprintf("a%04d", i), FaultId: fmt.Sprintf("f-%d-%x", n, (i*7919)%1000)})
		}
		if _, err := s.ApplyCreateFaultGroup(meta(""), g); err != nil {
			b.Fatal(err)
		}
	}
}
