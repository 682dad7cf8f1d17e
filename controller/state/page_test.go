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
		agents, more := s.AgentsPage("a-09", 5, nil)
		if len(agents) != 5 || agents[0].GetId() != "a-10" || agents[4].GetId() != "a-14" || !more {
			t.Errorf("AgentsPage(a-09, 5) = %v, more %v; want a-10..a-14 and more", agents, more)
		}
	}
}

// TestEventsAndAuditPages: filters apply before paging, pages follow on,
// and a type ending in a dot selects a family of events.
func TestEventsAndAuditPages(t *testing.T) {
	st := state.New()
	t0 := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	for i := range 10 {
		m := state.Meta{Time: t0.Add(time.Duration(i) * time.Second), Actor: fmt.Sprintf("admin/u%d", i%2)}
		id := fmt.Sprintf("a-%d", i)
		if _, err := st.ApplyRegisterAgent(m, &turbulencev1.Agent{Id: id}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.ApplyCreateFault(m, &turbulencev1.Fault{Id: "f-" + id, AgentId: id, Deadline: timestamppb.New(t0)}); err != nil {
			t.Fatal(err)
		}
		st.ApplyAudit(m, state.AuditRecord{Action: "fault.apply"}, nil)
	}
	page, more := st.EventsPage(state.EventFilter{Type: "fault."}, 0, 4)
	if len(page) != 4 || !more || page[0].GetType() != state.EventFaultCreated {
		t.Fatalf("EventsPage(fault., 4) = %d events (more %v), want 4 fault events and more", len(page), more)
	}
	rest, more := st.EventsPage(state.EventFilter{Type: "fault."}, page[3].GetSequence(), 100)
	if len(rest) != 6 || more {
		t.Fatalf("next EventsPage = %d events (more %v), want the 6 others and no more", len(rest), more)
	}
	one, _ := st.EventsPage(state.EventFilter{AgentID: "a-3", Since: t0.Add(3 * time.Second), Until: t0.Add(4 * time.Second)}, 0, 100)
	if len(one) != 2 {
		t.Fatalf("EventsPage(a-3, [3s,4s)) = %d events, want its registration and its fault", len(one))
	}
	audit, more := st.AuditPage(state.AuditFilter{Actor: "admin/u1", Limit: 3}, 0)
	if len(audit) != 3 || !more || audit[0].GetActor() != "admin/u1" || audit[0].GetSequence() <= audit[2].GetSequence() {
		t.Fatalf("AuditPage(u1, 3) = %v (more %v), want u1's 3 newest, newest first, and more", audit, more)
	}
	older, more := st.AuditPage(state.AuditFilter{Actor: "admin/u1", Limit: 3}, audit[2].GetSequence())
	if len(older) != 2 || more {
		t.Fatalf("next AuditPage = %d records (more %v), want u1's 2 oldest", len(older), more)
	}
}

// TestAgentsPage_Filtered: a filter applies before paging, pages hold only
// kept agents, and the list ends on a full page when the last kept agent
// fills it (more is false: no empty page follows).
func TestAgentsPage_Filtered(t *testing.T) {
	t.Parallel()
	st := state.New()
	for i := range 20 {
		role := "db"
		if i%2 == 0 {
			role = "web"
		}
		a := &turbulencev1.Agent{Id: fmt.Sprintf("a-%02d", i), Labels: map[string]string{"role": role}}
		if _, err := st.ApplyRegisterAgent(state.Meta{}, a); err != nil {
			t.Fatal(err)
		}
	}
	web := func(a *turbulencev1.Agent) bool { return a.GetLabels()["role"] == "web" }
	for _, size := range []int{1, 3, 5, 10, 11} {
		var got []string
		after, pages := "", 0
		for {
			page, more := st.AgentsPage(after, size, web)
			pages++
			if len(page) == 0 {
				t.Fatalf("page size %d: page %d is empty", size, pages)
			}
			for _, a := range page {
				got = append(got, a.GetId())
			}
			if !more {
				break
			}
			after = page[len(page)-1].GetId()
		}
		want := []string{"a-00", "a-02", "a-04", "a-06", "a-08", "a-10", "a-12", "a-14", "a-16", "a-18"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("page size %d: web agents by pages (-want +got):\n%s", size, diff)
		}
		if wantPages := (len(want) + size - 1) / size; pages != wantPages {
			t.Errorf("page size %d: %d pages, want %d", size, pages, wantPages)
		}
	}
	if page, more := st.AgentsPage("", 5, func(*turbulencev1.Agent) bool { return false }); len(page) != 0 || more {
		t.Errorf("AgentsPage(keep none) = %v, more %v; want nothing", page, more)
	}
}
