package fsm

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/turbulence-sre/turbulence/controller/state"
	raftv1 "github.com/turbulence-sre/turbulence/proto/turbulence/raft/v1"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// groupEntry is a CreateFaultGroup choosing agents (fault "<group>-<agent>")
// and refusing refused ("offline").
func groupEntry(req, id string, agents, refused []string) *raftv1.LogEntry {
	g := &turbulencev1.FaultGroup{
		Id:       id,
		Spec:     &turbulencev1.FaultSpec{Duration: durationpb.New(time.Minute), Kind: &turbulencev1.FaultSpec_Cpu{Cpu: &turbulencev1.CPUSpec{LoadPercent: 50}}},
		Selector: "zone=a",
		Seed:     7,
		Chosen:   uint32(len(agents)),
	}
	for _, a := range agents {
		g.Members = append(g.Members, &turbulencev1.GroupMember{AgentId: a, FaultId: id + "-" + a})
	}
	for _, a := range refused {
		g.Members = append(g.Members, &turbulencev1.GroupMember{AgentId: a, Refusal: "offline"})
	}
	return &raftv1.LogEntry{RequestId: req, Cmd: &raftv1.LogEntry_CreateFaultGroup{CreateFaultGroup: &raftv1.CreateFaultGroup{Group: g}}}
}

func revertGroupEntry(req, id string) *raftv1.LogEntry {
	return &raftv1.LogEntry{RequestId: req, Cmd: &raftv1.LogEntry_RevertFaultGroup{RevertFaultGroup: &raftv1.RevertFaultGroup{GroupId: id, Reason: "group revert"}}}
}

func TestFSM_GroupIsOneEntry(t *testing.T) {
	t.Parallel()
	f := New(state.New(), nil)
	resp := applyAll(t, f,
		registerEntry("a1"), registerEntry("a2"), registerEntry("a3"),
		groupEntry("r1", "g1", []string{"a1", "a3"}, []string{"a2"}),
		// The same request again, even with another choice, is the same group.
		groupEntry("r1", "g2", []string{"a2"}, nil),
	)
	g, ok := resp[3].(*turbulencev1.FaultGroup)
	if !ok {
		t.Fatalf("group response = %v", resp[3])
	}
	if again, ok := resp[4].(*turbulencev1.FaultGroup); !ok || again.GetId() != "g1" {
		t.Errorf("retry response = %v, want group g1", resp[4])
	}
	faults := f.State().Faults(state.FaultFilter{})
	if len(faults) != 2 {
		t.Fatalf("faults = %d, want 2 (one per chosen member)", len(faults))
	}
	for _, fa := range faults {
		if fa.GetGroupId() != "g1" || fa.GetState() != turbulencev1.FaultState_FAULT_STATE_PENDING ||
			!fa.GetDeadline().AsTime().Equal(fa.GetCreatedAt().AsTime().Add(time.Minute)) || fa.GetCreatedBy() != "admin/test" {
			t.Errorf("member fault = %v, want PENDING in g1 with deadline created+1m", fa)
		}
	}
	if m := g.GetMembers()[0]; m.GetState() != turbulencev1.FaultState_FAULT_STATE_PENDING {
		t.Errorf("member read back = %v, want PENDING", m)
	}
	if _, ok := f.State().FaultGroup("g2"); ok {
		t.Error("a retried request made a second group")
	}
}

func TestFSM_GroupAllOrNothing(t *testing.T) {
	t.Parallel()
	f := New(state.New(), nil)
	resp := applyAll(t, f,
		registerEntry("a1"),
		// a9 is not registered: the whole group is refused, a1 gets nothing.
		groupEntry("r1", "g1", []string{"a1", "a9"}, nil),
	)
	if err, ok := resp[1].(error); !ok || !errors.Is(err, state.ErrNotFound) {
		t.Errorf("response = %v, want ErrNotFound", resp[1])
	}
	if n := len(f.State().Faults(state.FaultFilter{})); n != 0 {
		t.Errorf("faults after a refused group = %d, want 0", n)
	}
	if _, ok := f.State().FaultGroup("g1"); ok {
		t.Error("refused group recorded")
	}
	// The same agent twice: refused as a whole.
	twice := groupEntry("r2", "g2", []string{"a1"}, nil)
	twice.GetCreateFaultGroup().GetGroup().Members = append(twice.GetCreateFaultGroup().GetGroup().Members, &turbulencev1.GroupMember{AgentId: "a1", FaultId: "other"})
	resp = applyAll(t, f, twice)
	if err, ok := resp[0].(error); !ok || !errors.Is(err, state.ErrInvalidEntry) {
		t.Errorf("agent chosen twice = %v, want ErrInvalidEntry", resp[0])
	}
	if n := len(f.State().Faults(state.FaultFilter{})); n != 0 {
		t.Errorf("faults after a refused group = %d, want 0", n)
	}
	// Halted: refused as a whole too.
	f2 := New(state.New(), nil)
	resp = applyAll(t, f2, registerEntry("a1"), haltEntry(true, "x"), groupEntry("r1", "g1", []string{"a1"}, nil))
	if err, ok := resp[2].(error); !ok || !errors.Is(err, state.ErrHalted) {
		t.Errorf("group while halted = %v, want ErrHalted", resp[2])
	}
}

func TestFSM_HaltAndRevertCoverGroups(t *testing.T) {
	t.Parallel()
	f := New(state.New(), nil)
	applyAll(t, f,
		registerEntry("a1"), registerEntry("a2"),
		groupEntry("r1", "g1", []string{"a1", "a2"}, nil),
		groupEntry("r2", "g2", []string{"a1"}, nil),
		updateEntry("g1-a1", turbulencev1.FaultState_FAULT_STATE_ACTIVE, ""),
		revertGroupEntry("r3", "g1"),
		haltEntry(true, "stop"),
	)
	g1, _ := f.State().FaultGroup("g1")
	for _, m := range g1.GetMembers() {
		if m.GetState() != turbulencev1.FaultState_FAULT_STATE_REVERTING || m.GetReason() != "group revert" {
			t.Errorf("g1 member %s = %s (%s), want REVERTING by the group revert", m.GetAgentId(), m.GetState(), m.GetReason())
		}
	}
	g2, _ := f.State().FaultGroup("g2")
	if m := g2.GetMembers()[0]; m.GetState() != turbulencev1.FaultState_FAULT_STATE_REVERTING || m.GetReason() != state.HaltReason {
		t.Errorf("g2 member = %s (%s), want REVERTING by the halt", m.GetState(), m.GetReason())
	}
	page, more := f.State().FaultGroupsPage(state.FaultCursor{}, 1)
	if len(page) != 1 || !more || page[0].GetId() != "g1" || page[0].GetLive() != 2 {
		t.Errorf("first page = %v (more %v), want g1 with 2 live", page, more)
	}
}
