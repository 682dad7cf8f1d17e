package fsm

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/turbulence-sre/turbulence/controller/state"
	raftv1 "github.com/turbulence-sre/turbulence/proto/turbulence/raft/v1"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// makeLog wraps an entry in a raft.Log the way raft hands it to Apply.
func makeLog(t *testing.T, index uint64, e *raftv1.LogEntry) *raft.Log {
	t.Helper()
	if e.ProposedAt == nil {
		e.ProposedAt = timestamppb.New(t0.Add(time.Duration(index) * time.Second))
	}
	if e.Actor == "" {
		e.Actor = "admin/test"
	}
	data, err := proto.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data}
}

func registerEntry(id string) *raftv1.LogEntry {
	return &raftv1.LogEntry{Cmd: &raftv1.LogEntry_RegisterAgent{RegisterAgent: &raftv1.RegisterAgent{
		Agent: &turbulencev1.Agent{Id: id, Labels: map[string]string{"zone": "a"}, Capabilities: &turbulencev1.Capabilities{FaultKinds: []string{"cpu"}}},
	}}}
}

func createEntry(req, id, agent string) *raftv1.LogEntry {
	return &raftv1.LogEntry{RequestId: req, Cmd: &raftv1.LogEntry_CreateFault{CreateFault: &raftv1.CreateFault{Fault: &turbulencev1.Fault{
		Id:       id,
		AgentId:  agent,
		Spec:     &turbulencev1.FaultSpec{Duration: durationpb.New(time.Minute), Kind: &turbulencev1.FaultSpec_Cpu{Cpu: &turbulencev1.CPUSpec{LoadPercent: 40}}},
		Deadline: timestamppb.New(t0.Add(time.Hour)),
	}}}}
}

func updateEntry(id string, st turbulencev1.FaultState, reason string) *raftv1.LogEntry {
	return &raftv1.LogEntry{Cmd: &raftv1.LogEntry_UpdateFault{UpdateFault: &raftv1.UpdateFault{
		FaultId: id, State: st, Reason: reason,
		Status: &turbulencev1.FaultStatus{FaultId: id, State: st, WorkerPid: 42},
	}}}
}

func haltEntry(halted bool, reason string) *raftv1.LogEntry {
	return &raftv1.LogEntry{Cmd: &raftv1.LogEntry_SetHalt{SetHalt: &raftv1.SetHalt{Halted: halted, Reason: reason}}}
}

// applyAll applies entries in order and returns the responses.
func applyAll(t *testing.T, f *FSM, entries ...*raftv1.LogEntry) []any {
	t.Helper()
	var out []any
	for i, e := range entries {
		out = append(out, f.Apply(makeLog(t, uint64(i+1), e)))
	}
	return out
}

func TestFSM_ApplyEachCommand(t *testing.T) {
	t.Parallel()
	f := New(state.New(), nil)
	resp := applyAll(t, f,
		registerEntry("a1"),
		createEntry("r1", "f1", "a1"),
		updateEntry("f1", turbulencev1.FaultState_FAULT_STATE_ACTIVE, ""),
		haltEntry(true, "slo"),
	)
	if a, ok := resp[0].(*turbulencev1.Agent); !ok || a.GetId() != "a1" || !a.GetRegisteredAt().AsTime().Equal(t0.Add(time.Second)) {
		t.Errorf("register response = %v", resp[0])
	}
	if fa, ok := resp[1].(*turbulencev1.Fault); !ok || fa.GetState() != turbulencev1.FaultState_FAULT_STATE_PENDING || fa.GetCreatedBy() != "admin/test" {
		t.Errorf("create response = %v", resp[1])
	}
	if fa, ok := resp[2].(*turbulencev1.Fault); !ok || fa.GetState() != turbulencev1.FaultState_FAULT_STATE_ACTIVE || fa.GetStatus().GetWorkerPid() != 42 {
		t.Errorf("update response = %v", resp[2])
	}
	if h, ok := resp[3].(*turbulencev1.HaltStatus); !ok || !h.GetHalted() || h.GetReason() != "slo" {
		t.Errorf("halt response = %v", resp[3])
	}
	got, _ := f.State().Fault("f1")
	if got.GetState() != turbulencev1.FaultState_FAULT_STATE_REVERTING || got.GetReason() != state.HaltReason {
		t.Errorf("after halt fault = %v, want REVERTING for halt", got)
	}
}

func TestFSM_RejectionIsAResponseNotAPanic(t *testing.T) {
	t.Parallel()
	f := New(state.New(), nil)
	resp := applyAll(t, f, createEntry("r1", "f1", "nobody"))
	if err, ok := resp[0].(error); !ok || !errors.Is(err, state.ErrNotFound) {
		t.Errorf("response = %v, want ErrNotFound", resp[0])
	}
}

func TestFSM_SameRequestIDCreatesOneFault(t *testing.T) {
	t.Parallel()
	f := New(state.New(), nil)
	resp := applyAll(t, f,
		registerEntry("a1"),
		createEntry("same", "f1", "a1"),
		createEntry("same", "f2", "a1"),
	)
	first, second := resp[1].(*turbulencev1.Fault), resp[2].(*turbulencev1.Fault)
	if diff := cmp.Diff(first, second, protocmp.Transform()); diff != "" {
		t.Errorf("retry response differs (-first +retry):\n%s", diff)
	}
	if n := len(f.State().Faults(state.FaultFilter{})); n != 1 {
		t.Errorf("faults = %d, want 1", n)
	}
}

func TestFSM_UndecodableEntryPanics(t *testing.T) {
	t.Parallel()
	for name, data := range map[string][]byte{
		"garbage":    {0xff, 0xff, 0xff},
		"no command": mustMarshal(t, &raftv1.LogEntry{RequestId: "r"}),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			defer func() {
				if recover() == nil {
					t.Error("Apply did not panic")
				}
			}()
			New(state.New(), nil).Apply(&raft.Log{Index: 7, Data: data})
		})
	}
}

func mustMarshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fullFSM returns an FSM whose state holds every snapshot record type.
func fullFSM(t *testing.T) *FSM {
	t.Helper()
	f := New(state.New(), nil)
	resp := applyAll(t, f,
		registerEntry("a1"),
		registerEntry("a2"),
		createEntry("r1", "f1", "a1"),
		createEntry("r2", "f2", "a2"),
		updateEntry("f1", turbulencev1.FaultState_FAULT_STATE_ACTIVE, ""),
		updateEntry("f2", turbulencev1.FaultState_FAULT_STATE_FAILED, "agent refused"),
		// An UNCONFIRMED fault and one ended by the agent's report: the
		// snapshot must carry unconfirmed_since and the agent's ended_at.
		createEntry("r3", "f3", "a1"),
		&raftv1.LogEntry{Cmd: &raftv1.LogEntry_UpdateFault{UpdateFault: &raftv1.UpdateFault{
			FaultId: "f3", State: turbulencev1.FaultState_FAULT_STATE_UNCONFIRMED, Reason: "lease expired",
			UnconfirmedSince: timestamppb.New(t0.Add(-time.Second)),
		}}},
		createEntry("r4", "f4", "a1"),
		&raftv1.LogEntry{Cmd: &raftv1.LogEntry_UpdateFault{UpdateFault: &raftv1.UpdateFault{
			FaultId: "f4", State: turbulencev1.FaultState_FAULT_STATE_REVERTED, Reason: "agent restarted",
			Status: &turbulencev1.FaultStatus{FaultId: "f4", State: turbulencev1.FaultState_FAULT_STATE_REVERTED, EndedAt: timestamppb.New(t0.Add(-time.Minute))},
		}}},
		groupEntry("r5", "g1", []string{"a1", "a2"}, []string{"a3"}),
		experimentEntry("r6", "x1"),
		progressEntry(&raftv1.UpdateExperiment{Id: "x1", State: turbulencev1.ExperimentState_EXPERIMENT_STATE_RUNNING,
			Targets: []*turbulencev1.ExperimentTarget{{Name: "web", AgentIds: []string{"a1"}}},
			Series:  []*turbulencev1.ProbeSeries{{Probe: "http", Samples: []*turbulencev1.ProbeSample{{TimeUnixNano: 1, Value: 0.1, Ok: true}}}}}),
		experimentEntry("r7", "x2"),
		audited(haltEntry(true, "game day over"), "fleet.halt", "halt the fleet: game day over"),
		audited(&raftv1.LogEntry{Cmd: &raftv1.LogEntry_RecordAudit{RecordAudit: &raftv1.RecordAudit{}}}, "cluster.join", "join c2"),
	)
	for i, r := range resp {
		if err, ok := r.(error); ok {
			t.Fatalf("entry %d: %v", i, err)
		}
	}
	return f
}

func TestFSM_SnapshotRestoreRoundTrip(t *testing.T) {
	t.Parallel()
	src := fullFSM(t)
	var buf bytes.Buffer
	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Persist(&memSink{Buffer: &buf}); err != nil {
		t.Fatal(err)
	}
	dst := New(state.New(), nil)
	if err := dst.Restore(io.NopCloser(&buf)); err != nil {
		t.Fatal(err)
	}
	want, got := src.State().Records(), dst.State().Records()
	seen := map[string]bool{}
	for _, r := range want {
		seen[string(r.ProtoReflect().WhichOneof(r.ProtoReflect().Descriptor().Oneofs().Get(0)).Name())] = true
	}
	for _, kind := range []string{"agent", "fault", "halt", "event", "applied_request", "counters", "audit", "fault_group", "experiment"} {
		if !seen[kind] {
			t.Errorf("test state has no %s record; the round trip does not cover it", kind)
		}
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("restored state differs (-want +got):\n%s", diff)
	}
	if f3, _ := dst.State().Fault("f3"); !f3.GetUnconfirmedSince().AsTime().Equal(t0.Add(-time.Second)) || f3.GetState() != turbulencev1.FaultState_FAULT_STATE_UNCONFIRMED {
		t.Errorf("restored f3 = %s since %v, want UNCONFIRMED since %s (a halt leaves it alone)", f3.GetState(), f3.GetUnconfirmedSince(), t0.Add(-time.Second))
	}
	if f4, _ := dst.State().Fault("f4"); !f4.GetEndedAt().AsTime().Equal(t0.Add(-time.Minute)) {
		t.Errorf("restored f4 ended_at = %v, want the agent's %s", f4.GetEndedAt(), t0.Add(-time.Minute))
	}
	// The restored state keeps counting where the old one stopped, and
	// still knows the applied request IDs.
	resp := applyAll(t, dst, createEntry("r1", "f9", "a1"))
	if fa, ok := resp[0].(*turbulencev1.Fault); !ok || fa.GetId() != "f1" {
		t.Errorf("retry after restore = %v, want fault f1", resp[0])
	}
	if src.State().LastSequence() != dst.State().LastSequence() {
		t.Errorf("last sequence %d after restore, want %d", dst.State().LastSequence(), src.State().LastSequence())
	}
	// The audit log keeps counting too.
	resp = applyAll(t, dst, audited(haltEntry(false, ""), "fleet.resume", "resume the fleet"))
	if _, ok := resp[0].(error); ok {
		t.Fatalf("resume after restore: %v", resp[0])
	}
	if got := dst.State().Audit(state.AuditFilter{Limit: 1}); len(got) != 1 || got[0].GetSequence() != 3 {
		t.Errorf("audit after restore = %v, want sequence 3 on top", got)
	}
}

func TestFSM_RestoreRejectsWrongVersion(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	if err := WriteSnapshot(&buf, nil); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	data[2] = 9 // header: len, tag(field 1 varint), value
	if _, err := ReadSnapshot(bytes.NewReader(data)); err == nil {
		t.Error("ReadSnapshot accepted format version 9")
	}
	full := snapshotBytes(t, fullFSM(t))
	if _, err := ReadSnapshot(bytes.NewReader(full[:len(full)-3])); err == nil {
		t.Error("ReadSnapshot accepted a truncated snapshot")
	}
}

func snapshotBytes(t testing.TB, f *FSM) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteSnapshot(&buf, f.State().Records()); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// memSink is a raft.SnapshotSink over a buffer.
type memSink struct {
	*bytes.Buffer
	cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }
func (s *memSink) Close() error  { return nil }

// audited adds an Audit to an entry, as controlapi does for every
// ControlService write.
func audited(e *raftv1.LogEntry, action, summary string) *raftv1.LogEntry {
	e.Audit = &raftv1.Audit{Action: action, Summary: summary}
	if e.RequestId == "" {
		e.RequestId = "req-" + action
	}
	return e
}

func TestFSM_AuditRecordedWithTheWrite(t *testing.T) {
	t.Parallel()
	f := New(state.New(), nil)
	create := audited(createEntry("r1", "f1", "a1"), "fault.apply", "apply cpu fault f1 to agent a1")
	resp := applyAll(t, f,
		registerEntry("a1"), // internal write: no audit
		create,
		audited(createEntry("r2", "f2", "nobody"), "fault.apply", "apply cpu fault f2 to agent nobody"),
		audited(&raftv1.LogEntry{Actor: "admin/root", Cmd: &raftv1.LogEntry_RecordAudit{RecordAudit: &raftv1.RecordAudit{}}}, "cluster.remove", "remove c3"),
	)
	if _, ok := resp[1].(*turbulencev1.Fault); !ok {
		t.Fatalf("create response = %v", resp[1])
	}
	if _, ok := resp[2].(error); !ok {
		t.Fatalf("create for an unknown agent = %v, want a rejection", resp[2])
	}
	if a, ok := resp[3].(*turbulencev1.AuditEntry); !ok || a.GetAction() != "cluster.remove" {
		t.Fatalf("record audit response = %v, want the audit entry", resp[3])
	}
	got := f.State().Audit(state.AuditFilter{})
	// makeLog stamps index i with t0+i seconds: the time is the
	// proposer's, carried in the entry.
	want := []*turbulencev1.AuditEntry{
		{Sequence: 3, Time: timestamppb.New(t0.Add(4 * time.Second)), Actor: "admin/root", RequestId: "req-cluster.remove", Action: "cluster.remove", Summary: "remove c3"},
		{Sequence: 2, Time: timestamppb.New(t0.Add(3 * time.Second)), Actor: "admin/test", RequestId: "r2", Action: "fault.apply", Summary: "apply cpu fault f2 to agent nobody",
			Error: `agent_id: agent "nobody" is not registered`},
		{Sequence: 1, Time: timestamppb.New(t0.Add(2 * time.Second)), Actor: "admin/test", RequestId: "r1", Action: "fault.apply", Summary: "apply cpu fault f1 to agent a1"},
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("audit log (-want +got):\n%s", diff)
	}
}
