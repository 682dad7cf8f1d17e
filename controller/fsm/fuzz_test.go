package fsm

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/turbulence-sre/turbulence/controller/state"
	raftv1 "github.com/turbulence-sre/turbulence/proto/turbulence/raft/v1"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// snapshotOracle is a plain statement of what a restorable snapshot is,
// independent of state.Replace: every agent and fault has an ID, event
// and audit sequences strictly increase, and every record is of a known
// type. Replace may refuse more; it must never accept what this refuses.
func snapshotOracle(records []*raftv1.SnapshotRecord) error {
	var lastEvent, lastAudit uint64
	var events, audits int
	for i, r := range records {
		switch rec := r.GetRecord().(type) {
		case *raftv1.SnapshotRecord_Counters, *raftv1.SnapshotRecord_Halt, *raftv1.SnapshotRecord_AppliedRequest:
		case *raftv1.SnapshotRecord_Agent:
			if rec.Agent.GetId() == "" {
				return fmt.Errorf("record %d: agent without id", i)
			}
		case *raftv1.SnapshotRecord_Fault:
			if rec.Fault.GetId() == "" {
				return fmt.Errorf("record %d: fault without id", i)
			}
		case *raftv1.SnapshotRecord_FaultGroup:
			if rec.FaultGroup.GetId() == "" {
				return fmt.Errorf("record %d: fault group without id", i)
			}
		case *raftv1.SnapshotRecord_Event:
			if events > 0 && rec.Event.GetSequence() <= lastEvent {
				return fmt.Errorf("record %d: event %d after %d", i, rec.Event.GetSequence(), lastEvent)
			}
			events, lastEvent = events+1, rec.Event.GetSequence()
		case *raftv1.SnapshotRecord_Audit:
			if audits > 0 && rec.Audit.GetSequence() <= lastAudit {
				return fmt.Errorf("record %d: audit %d after %d", i, rec.Audit.GetSequence(), lastAudit)
			}
			audits, lastAudit = audits+1, rec.Audit.GetSequence()
		default:
			return fmt.Errorf("record %d: unknown type", i)
		}
	}
	return nil
}

// recordsEqual reports whether two record lists are equal, record by record.
func recordsEqual(a, b []*raftv1.SnapshotRecord) bool {
	return slices.EqualFunc(a, b, func(x, y *raftv1.SnapshotRecord) bool { return proto.Equal(x, y) })
}

// FuzzReadSnapshot checks properties of the snapshot reader and of the
// restore that follows it (validate, then apply), not only that neither
// panics:
//   - the codec round-trips: what ReadSnapshot accepts, WriteSnapshot
//     writes back into bytes that read as the same records;
//   - Replace never accepts what snapshotOracle refuses;
//   - a refused Replace keeps the state it had (state.Replace's promise);
//   - an accepted restore is a fixed point: the snapshot of the restored
//     state restores to the same records, and its counters are past the
//     last event and audit sequence (no sequence can be handed out twice).
func FuzzReadSnapshot(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x02, 0x08, 0x01})
	f.Add([]byte{0x02, 0x08, 0x01, 0xff, 0xff, 0xff, 0xff, 0x0f})
	var empty bytes.Buffer
	if err := WriteSnapshot(&empty, nil); err != nil {
		f.Fatal(err)
	}
	f.Add(empty.Bytes())
	f.Add(snapshotBytes(f, seededFSM(f)))
	// Records a restore must refuse: an agent without an ID, events out
	// of order, audit entries out of order.
	for _, recs := range [][]*raftv1.SnapshotRecord{
		{{Record: &raftv1.SnapshotRecord_Agent{Agent: &turbulencev1.Agent{}}}},
		{{Record: &raftv1.SnapshotRecord_Event{Event: &turbulencev1.Event{Sequence: 5}}}, {Record: &raftv1.SnapshotRecord_Event{Event: &turbulencev1.Event{Sequence: 5}}}},
		{{Record: &raftv1.SnapshotRecord_Audit{Audit: &turbulencev1.AuditEntry{Sequence: 9}}}, {Record: &raftv1.SnapshotRecord_Audit{Audit: &turbulencev1.AuditEntry{Sequence: 3}}}},
		{{Record: &raftv1.SnapshotRecord_Counters{Counters: &raftv1.Counters{NextEventSequence: 2}}}, {Record: &raftv1.SnapshotRecord_Event{Event: &turbulencev1.Event{Sequence: 7}}}},
	} {
		var b bytes.Buffer
		if err := WriteSnapshot(&b, recs); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes())
	}
	seeded := seededFSM(f).State().Records()
	f.Fuzz(func(t *testing.T, data []byte) {
		records, err := ReadSnapshot(bytes.NewReader(data))
		if err != nil {
			return
		}
		var rewritten bytes.Buffer
		if err := WriteSnapshot(&rewritten, records); err != nil {
			t.Fatalf("WriteSnapshot of records ReadSnapshot accepted: %v", err)
		}
		again, err := ReadSnapshot(&rewritten)
		if err != nil || !recordsEqual(again, records) {
			t.Fatalf("snapshot codec does not round-trip: %v", err)
		}

		st := state.New()
		if err := st.Replace(seeded); err != nil {
			t.Fatal(err)
		}
		if err := st.Replace(records); err != nil {
			if got := st.Records(); !recordsEqual(got, seeded) {
				t.Fatalf("a refused restore (%v) changed the state", err)
			}
			return
		}
		if oerr := snapshotOracle(records); oerr != nil {
			t.Fatalf("Replace accepted a snapshot the oracle refuses: %v", oerr)
		}
		first := st.Records()
		var lastEvent, lastAudit uint64
		var counters *raftv1.Counters
		for _, r := range first {
			switch {
			case r.GetCounters() != nil:
				counters = r.GetCounters()
			case r.GetEvent() != nil:
				lastEvent = r.GetEvent().GetSequence()
			case r.GetAudit() != nil:
				lastAudit = r.GetAudit().GetSequence()
			}
		}
		if counters.GetNextEventSequence() <= lastEvent || counters.GetNextAuditSequence() <= lastAudit {
			t.Fatalf("restored counters %v do not pass the last event %d and audit %d", counters, lastEvent, lastAudit)
		}
		st2 := state.New()
		if err := st2.Replace(first); err != nil {
			t.Fatalf("the snapshot of a restored state does not restore: %v", err)
		}
		if !recordsEqual(st2.Records(), first) {
			t.Fatalf("restore is not a fixed point:\nfirst  %v\nsecond %v", first, st2.Records())
		}
	})
}

// FuzzDecodeEntry checks that DecodeEntry never panics, that whatever it
// accepts has a handler, and that applying it never panics. The seed
// corpus (testdata/fuzz/FuzzDecodeEntry) holds one entry per command,
// audited and not.
func FuzzDecodeEntry(f *testing.F) {
	for _, e := range []*raftv1.LogEntry{
		registerEntry("a1"),
		createEntry("r1", "f1", "a1"),
		updateEntry("f1", 2, "x"),
		haltEntry(true, "stop"),
		groupEntry("r2", "g1", []string{"a1"}, []string{"a2"}),
		revertGroupEntry("r3", "g1"),
		audited(haltEntry(true, "stop"), "fleet.halt", "halt the fleet: stop"),
		audited(&raftv1.LogEntry{Cmd: &raftv1.LogEntry_RecordAudit{RecordAudit: &raftv1.RecordAudit{}}}, "cluster.join", "join c2"),
		{RequestId: "nothing"},
	} {
		f.Add(mustMarshal(f, e))
	}
	f.Add([]byte{0xff})
	fsm := New(state.New(), nil)
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := DecodeEntry(data)
		if err != nil {
			return
		}
		if _, ok := fsm.handlers[typeOf(e)]; !ok {
			t.Errorf("DecodeEntry accepted %T, which has no handler", e.GetCmd())
		}
		// Whatever decodes must apply without a panic: a bad value is a
		// rejection (the response), never a crash of every replica.
		// Seeded with an agent and a fault so updates reach the state.
		g := New(state.New(), nil)
		g.Apply(rawLog(1, mustMarshal(t, registerEntry("a1"))))
		g.Apply(rawLog(2, mustMarshal(t, createEntry("r1", "f1", "a1"))))
		g.Apply(rawLog(3, data))
	})
}

// seededFSM is fullFSM for fuzz seeds, which have a *testing.F.
func seededFSM(f *testing.F) *FSM {
	fsm := New(state.New(), nil)
	for i, e := range []*raftv1.LogEntry{registerEntry("a1"), createEntry("r1", "f1", "a1"), groupEntry("r2", "g1", []string{"a1"}, []string{"a2"}), haltEntry(true, "x")} {
		e.ProposedAt = nil
		data := mustMarshal(f, e)
		if r, ok := fsm.Apply(rawLog(uint64(i+1), data)).(error); ok {
			f.Fatal(r)
		}
	}
	return fsm
}
