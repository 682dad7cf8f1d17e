package fsm

import (
	"bytes"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/turbulence-sre/turbulence/controller/state"
	raftv1 "github.com/turbulence-sre/turbulence/proto/turbulence/raft/v1"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

func pruneEntry(age time.Duration, max uint32, departedAge time.Duration, agents ...string) *raftv1.LogEntry {
	return &raftv1.LogEntry{Cmd: &raftv1.LogEntry_Prune{Prune: &raftv1.Prune{
		EndedFaultAge: durationpb.New(age), MaxEndedFaults: max,
		DepartedAgentAge: durationpb.New(departedAge), DepartedAgentIds: agents,
	}}}
}

// churnLog is a log of n faults made and reverted on two agents, a prune
// after every 50 of them, and a last prune that names agent a1 departed.
// makeLog stamps entry i at t0 + i s, so what each prune removes depends
// on the entry alone.
func churnLog(n int) []*raftv1.LogEntry {
	es := []*raftv1.LogEntry{registerEntry("a0"), registerEntry("a1")}
	for i := range n {
		id := fmt.Sprintf("f%04d", i)
		es = append(es, createEntry("", id, "a0"), updateEntry(id, turbulencev1.FaultState_FAULT_STATE_REVERTED, "done"))
		if i%50 == 49 {
			es = append(es, pruneEntry(10*time.Minute, 40, time.Hour))
		}
	}
	// a1 registered at t0+2s; two hours of log time later it is gone.
	for range 3600 {
		es = append(es, &raftv1.LogEntry{Cmd: &raftv1.LogEntry_RecordAudit{RecordAudit: &raftv1.RecordAudit{}}})
	}
	return append(es, pruneEntry(10*time.Minute, 40, time.Hour, "a1"))
}

// TestFSM_PruneSameOnEveryReplica: a leader, a follower that applies the
// same log, and a node restarted from a snapshot taken midway that
// replays the rest end with the same state, bounded by the policy: a
// prune is decided by the entry, not by the replica's clock.
func TestFSM_PruneSameOnEveryReplica(t *testing.T) {
	t.Parallel()
	log := churnLog(400)
	leader, follower, restarted := New(state.New(), nil), New(state.New(), nil), New(state.New(), nil)
	mid := len(log) / 2
	for i, e := range log {
		l := makeLog(t, uint64(i+1), e)
		leader.Apply(l)
		follower.Apply(l)
		if i+1 == mid {
			// The restarted node: a snapshot of this point, then the rest.
			var buf bytes.Buffer
			snap, err := leader.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			if err := snap.Persist(&memSink{Buffer: &buf}); err != nil {
				t.Fatal(err)
			}
			if err := restarted.Restore(io.NopCloser(&buf)); err != nil {
				t.Fatal(err)
			}
		}
		if i+1 > mid {
			restarted.Apply(l)
		}
	}
	want := leader.State().Records()
	for name, f := range map[string]*FSM{"follower": follower, "restarted": restarted} {
		if diff := cmp.Diff(want, f.State().Records(), protocmp.Transform()); diff != "" {
			t.Errorf("%s differs from the leader (-leader +%s):\n%s", name, name, diff)
		}
	}
	c := leader.State().Count()
	if c.EndedFaults > 40 || c.Agents != 1 {
		t.Errorf("after churn: %+v, want at most 40 ended faults and agent a0 alone", c)
	}
	if _, ok := leader.State().Agent("a1"); ok {
		t.Error("departed agent a1 is still registered")
	}
}
