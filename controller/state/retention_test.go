package state

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// at is a meta stamped d after t0.
func at(d time.Duration) Meta { return Meta{Actor: "test", Time: t0.Add(d)} }

// churn registers agents a0..a(agents-1) and makes n faults on them, each
// ended (REVERTED) one second after the previous one, from t0 on.
func churn(t testing.TB, s *State, agents, n int) {
	t.Helper()
	for i := range agents {
		if _, err := s.ApplyRegisterAgent(at(0), &turbulencev1.Agent{Id: fmt.Sprintf("a%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		id := fmt.Sprintf("f%05d", i)
		m := at(time.Duration(i) * time.Second)
		if _, err := s.ApplyCreateFault(m, newFault(id, fmt.Sprintf("a%d", i%agents))); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ApplyUpdateFault(m, FaultUpdate{FaultID: id, State: turbulencev1.FaultState_FAULT_STATE_REVERTED}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPrune_StateBoundedAfterChurn: however many faults come and go, the
// ended ones kept never exceed the count, and those kept are the latest
// ends; what the age allows goes as well.
func TestPrune_StateBoundedAfterChurn(t *testing.T) {
	t.Parallel()
	s := New()
	churn(t, s, 10, 1000)
	res, err := s.ApplyPrune(at(1000*time.Second), Prune{Retention: Retention{MaxEndedFaults: 100, EndedFaultAge: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Faults != 900 {
		t.Errorf("pruned %d faults, want 900", res.Faults)
	}
	if c := s.Count(); c.Faults != 100 || c.EndedFaults != 100 || c.Agents != 10 {
		t.Errorf("after prune: %+v, want 100 ended faults and the 10 agents", c)
	}
	if _, ok := s.Fault("f00899"); ok {
		t.Error("f00899 (ended before the newest 100) is still there")
	}
	if _, ok := s.Fault("f00900"); !ok {
		t.Error("f00900 (among the newest 100 ends) was removed")
	}
	// The paged list skips nothing and shows nothing removed.
	page, more := s.FaultsPage(FaultFilter{}, FaultCursor{}, 1000)
	if len(page) != 100 || more {
		t.Errorf("FaultsPage after prune: %d faults (more %v), want 100", len(page), more)
	}
	// By age: at t0+1000s+30s with a 60s age, the ends older than
	// t0+970s go (f00900..f00969), 30 are left.
	if _, err := s.ApplyPrune(at(1030*time.Second), Prune{Retention: Retention{MaxEndedFaults: 100, EndedFaultAge: time.Minute}}); err != nil {
		t.Fatal(err)
	}
	if c := s.Count(); c.EndedFaults != 30 {
		t.Errorf("after prune by age: %d ended faults, want 30", c.EndedFaults)
	}
	if evs, _ := s.EventsPage(EventFilter{Type: EventStatePruned}, 0, 100); len(evs) != 2 {
		t.Errorf("%d %s events, want 2", len(evs), EventStatePruned)
	}
}

// TestPrune_LiveFaultNeverPruned: a fault that is not ended stays, however
// old and however low the count, and so does its agent and its group.
func TestPrune_LiveFaultNeverPruned(t *testing.T) {
	t.Parallel()
	s := New()
	churn(t, s, 2, 10)
	live := map[string]turbulencev1.FaultState{
		"active":      turbulencev1.FaultState_FAULT_STATE_ACTIVE,
		"pending":     turbulencev1.FaultState_FAULT_STATE_PENDING,
		"reverting":   turbulencev1.FaultState_FAULT_STATE_REVERTING,
		"unconfirmed": turbulencev1.FaultState_FAULT_STATE_UNCONFIRMED,
	}
	for id, st := range live {
		if _, err := s.ApplyCreateFault(at(0), newFault(id, "a0")); err != nil {
			t.Fatal(err)
		}
		if st != turbulencev1.FaultState_FAULT_STATE_PENDING {
			if _, err := s.ApplyUpdateFault(at(0), FaultUpdate{FaultID: id, State: st}); err != nil {
				t.Fatal(err)
			}
		}
	}
	g := &turbulencev1.FaultGroup{Id: "g1", Spec: newFault("x", "y").GetSpec(), Members: []*turbulencev1.GroupMember{{AgentId: "a1", FaultId: "gf1"}}}
	if _, err := s.ApplyCreateFaultGroup(at(0), g); err != nil {
		t.Fatal(err)
	}
	res, err := s.ApplyPrune(at(1000*time.Hour), Prune{
		Retention:        Retention{MaxEndedFaults: 1, EndedFaultAge: time.Minute, DepartedAgentAge: time.Hour},
		DepartedAgentIDs: []string{"a0", "a1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for id, st := range live {
		if f, ok := s.Fault(id); !ok || f.GetState() != st {
			t.Errorf("%s fault: present %v state %v after prune, want kept %v", id, ok, f.GetState(), st)
		}
	}
	if _, ok := s.FaultGroup("g1"); !ok {
		t.Error("group g1 with a pending member was pruned")
	}
	if res.Faults != 10 || res.Agents != 0 || res.Groups != 0 {
		t.Errorf("prune = %+v, want the 10 ended faults only", res)
	}
	// Once its member has ended and gone, the group goes too, and the
	// agents without a live fault.
	for id := range live {
		if _, err := s.ApplyUpdateFault(at(0), FaultUpdate{FaultID: id, State: turbulencev1.FaultState_FAULT_STATE_REVERTED}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.ApplyUpdateFault(at(0), FaultUpdate{FaultID: "gf1", State: turbulencev1.FaultState_FAULT_STATE_FAILED}); err != nil {
		t.Fatal(err)
	}
	res, err = s.ApplyPrune(at(1000*time.Hour), Prune{
		Retention:        Retention{MaxEndedFaults: 1, EndedFaultAge: time.Minute, DepartedAgentAge: time.Hour},
		DepartedAgentIDs: []string{"a0", "a1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := (PruneResult{Faults: 5, Groups: 1, Agents: 2}); res != want {
		t.Errorf("second prune = %+v, want %+v", res, want)
	}
}

// TestPrune_DepartedAgents: only agents the leader names, that last
// registered before the cut-off, go.
func TestPrune_DepartedAgents(t *testing.T) {
	t.Parallel()
	s := New()
	for _, id := range []string{"old", "back", "named-not"} {
		if _, err := s.ApplyRegisterAgent(at(0), &turbulencev1.Agent{Id: id}); err != nil {
			t.Fatal(err)
		}
	}
	// "back" registered again on day 8: the leader's list (made before
	// that entry) names it, the state keeps it.
	if _, err := s.ApplyRegisterAgent(at(8*24*time.Hour), &turbulencev1.Agent{Id: "back"}); err != nil {
		t.Fatal(err)
	}
	p := Prune{Retention: Retention{DepartedAgentAge: 7 * 24 * time.Hour}, DepartedAgentIDs: []string{"old", "back", "unknown"}}
	if plan := s.PlanPrune(t0.Add(8*24*time.Hour), p); plan.Agents != 1 {
		t.Errorf("PlanPrune = %+v, want 1 agent", plan)
	}
	res, err := s.ApplyPrune(at(8*24*time.Hour), p)
	if err != nil {
		t.Fatal(err)
	}
	if res.Agents != 1 {
		t.Errorf("pruned %d agents, want 1", res.Agents)
	}
	if got := s.AgentIDs(); fmt.Sprint(got) != "[back named-not]" {
		t.Errorf("agents after prune = %v, want [back named-not]", got)
	}
	if a, _ := s.Agent("back"); !a.GetLastRegisteredAt().AsTime().Equal(t0.Add(8 * 24 * time.Hour)) {
		t.Errorf("back: last registered %v, want day 8", a.GetLastRegisteredAt().AsTime())
	}
	if a, _ := s.Agent("back"); !a.GetRegisteredAt().AsTime().Equal(t0) {
		t.Errorf("back: registered %v, want the first registration", a.GetRegisteredAt().AsTime())
	}
}

// TestPrune_SnapshotAgrees: a state restored from the snapshot of a
// pruned one holds the same records, and a replica that applies the
// same prune to the same state ends the same.
func TestPrune_SnapshotAgrees(t *testing.T) {
	t.Parallel()
	a, b := New(), New()
	churn(t, a, 5, 300)
	churn(t, b, 5, 300)
	p := Prune{Retention: Retention{MaxEndedFaults: 50, EndedFaultAge: time.Hour}}
	before := len(a.Records())
	for _, s := range []*State{a, b} {
		if _, err := s.ApplyPrune(at(400*time.Second), p); err != nil {
			t.Fatal(err)
		}
	}
	recs := a.Records()
	if len(recs) >= before-200 {
		t.Errorf("snapshot holds %d records after prune, %d before: want 250 fewer", len(recs), before)
	}
	restored := New()
	if err := restored.Replace(recs); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*State{"replica": b, "restored": restored} {
		got := s.Records()
		if len(got) != len(recs) {
			t.Fatalf("%s: %d records, want %d", name, len(got), len(recs))
		}
		for i := range got {
			if !proto.Equal(got[i], recs[i]) {
				t.Fatalf("%s: record %d = %v, want %v", name, i, got[i], recs[i])
			}
		}
	}
}

func TestPrune_NegativeRetentionRefused(t *testing.T) {
	t.Parallel()
	s := New()
	churn(t, s, 1, 3)
	if _, err := s.ApplyPrune(at(time.Hour), Prune{Retention: Retention{MaxEndedFaults: -1}}); err == nil {
		t.Fatal("negative max ended faults accepted")
	}
	if c := s.Count(); c.EndedFaults != 3 {
		t.Errorf("refused prune changed the state: %d ended faults, want 3", c.EndedFaults)
	}
}
