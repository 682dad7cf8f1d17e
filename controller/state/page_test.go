package state_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/turbulence-sre/turbulence/controller/state"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// TestPages_SurviveSnapshot: the page indexes are rebuilt by a snapshot
// restore, so a restored node pages as the one it was restored from.
func TestPages_SurviveSnapshot(t *testing.T) {
	st := state.New()
	t0 := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	for i := range 30 {
		m := state.Meta{Time: t0}
		id := fmt.Sprintf("a-%02d", 29-i)
		if _, err := st.ApplyRegisterAgent(m, &turbulencev1.Agent{Id: id}); err != nil {
			t.Fatal(err)
		}
		created := t0.Add(time.Duration(i%5) * time.Second)
		if _, err := st.ApplyCreateFault(m, &turbulencev1.Fault{Id: fmt.Sprintf("f-%02d", i), AgentId: id, CreatedAt: timestamppb.New(created), Deadline: timestamppb.New(created)}); err != nil {
			t.Fatal(err)
		}
	}
	restored := state.New()
	if err := restored.Replace(st.Records()); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*state.State{st, restored} {
		var got []string
		var after state.FaultCursor
		for {
			page, more := s.FaultsPage(state.FaultFilter{}, after, 7)
			for _, f := range page {
				got = append(got, f.GetId())
			}
			if !more {
				break
			}
			last := page[len(page)-1]
			after = state.FaultCursor{CreatedAt: last.GetCreatedAt().AsTime(), ID: last.GetId()}
		}
		var want []string
		for _, f := range st.Faults(state.FaultFilter{}) {
			want = append(want, f.GetId())
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("faults by pages differ from the sorted list (-want +got):\n%s", diff)
		}
		agents, more := s.AgentsPage("a-09", 5)
		if len(agents) != 5 || agents[0].GetId() != "a-10" || agents[4].GetId() != "a-14" || !more {
			t.Errorf("AgentsPage(a-09, 5) = %v, more %v; want a-10..a-14 and more", agents, more)
		}
	}
}
