package fsm

import (
	"bytes"
	"testing"

	"github.com/turbulence-sre/turbulence/controller/state"
	raftv1 "github.com/turbulence-sre/turbulence/proto/turbulence/raft/v1"
)

// FuzzReadSnapshot checks that no input makes the snapshot reader or the
// restore panic; a corrupt snapshot must be an error.
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
	f.Fuzz(func(t *testing.T, data []byte) {
		records, err := ReadSnapshot(bytes.NewReader(data))
		if err != nil {
			return
		}
		_ = state.New().Replace(records)
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
	for i, e := range []*raftv1.LogEntry{registerEntry("a1"), createEntry("r1", "f1", "a1"), haltEntry(true, "x")} {
		e.ProposedAt = nil
		data := mustMarshal(f, e)
		if r, ok := fsm.Apply(rawLog(uint64(i+1), data)).(error); ok {
			f.Fatal(r)
		}
	}
	return fsm
}
