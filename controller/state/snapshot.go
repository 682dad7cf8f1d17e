package state

import (
	"fmt"
	"slices"

	raftv1 "github.com/turbulence-sre/turbulence/proto/turbulence/raft/v1"
)

// Records returns the whole state as snapshot records, in a fixed order:
// counters, halt status, agents, faults and fault groups by ID, experiments oldest first, events oldest first,
// applied requests oldest first, audit records oldest first. The records are copies; the snapshot can
// be written while new entries are applied.
func (s *State) Records() []*raftv1.SnapshotRecord {
	s.mu.RLock()
	defer s.mu.RUnlock()
	d := s.d
	out := make([]*raftv1.SnapshotRecord, 0, 2+len(d.agents)+len(d.faults)+d.events.len()+len(d.appliedOrder)+len(d.audit))
	out = append(out,
		&raftv1.SnapshotRecord{Record: &raftv1.SnapshotRecord_Counters{Counters: &raftv1.Counters{NextEventSequence: d.nextSeq, NextAuditSequence: d.nextAuditSeq}}},
		&raftv1.SnapshotRecord{Record: &raftv1.SnapshotRecord_Halt{Halt: clone(d.halt)}},
	)
	for _, id := range sortedKeys(d.agents) {
		out = append(out, &raftv1.SnapshotRecord{Record: &raftv1.SnapshotRecord_Agent{Agent: clone(d.agents[id])}})
	}
	for _, id := range sortedKeys(d.faults) {
		out = append(out, &raftv1.SnapshotRecord{Record: &raftv1.SnapshotRecord_Fault{Fault: clone(d.faults[id])}})
	}
	for _, id := range sortedKeys(d.groups) {
		out = append(out, &raftv1.SnapshotRecord{Record: &raftv1.SnapshotRecord_FaultGroup{FaultGroup: clone(d.groups[id])}})
	}
	// Creation order, so that the restored list keeps its order.
	for _, x := range d.experimentOrder {
		out = append(out, &raftv1.SnapshotRecord{Record: &raftv1.SnapshotRecord_Experiment{Experiment: clone(x)}})
	}
	for e := range d.events.from(0) {
		out = append(out, &raftv1.SnapshotRecord{Record: &raftv1.SnapshotRecord_Event{Event: clone(e)}})
	}
	for _, id := range d.appliedOrder {
		out = append(out, &raftv1.SnapshotRecord{Record: &raftv1.SnapshotRecord_AppliedRequest{
			AppliedRequest: &raftv1.AppliedRequest{RequestId: id, ResultId: d.applied[id]},
		}})
	}
	for _, a := range d.audit {
		out = append(out, &raftv1.SnapshotRecord{Record: &raftv1.SnapshotRecord_Audit{Audit: clone(a)}})
	}
	return out
}

// Replace discards the current state and installs the one described by
// records (snapshot restore). The new dataset is built completely first
// and swapped in under the write lock, so readers never see a half
// restored state; on error the current state is kept.
func (s *State) Replace(records []*raftv1.SnapshotRecord) error {
	d := newData()
	var sawCounters bool
	for i, r := range records {
		switch rec := r.GetRecord().(type) {
		case *raftv1.SnapshotRecord_Counters:
			d.nextSeq = rec.Counters.GetNextEventSequence()
			d.nextAuditSeq = rec.Counters.GetNextAuditSequence()
			sawCounters = true
		case *raftv1.SnapshotRecord_Halt:
			d.halt = clone(rec.Halt)
		case *raftv1.SnapshotRecord_Agent:
			if rec.Agent.GetId() == "" {
				return fmt.Errorf("snapshot record %d: agent without id", i)
			}
			d.agents[rec.Agent.GetId()] = clone(rec.Agent)
		case *raftv1.SnapshotRecord_Fault:
			if rec.Fault.GetId() == "" {
				return fmt.Errorf("snapshot record %d: fault without id", i)
			}
			d.faults[rec.Fault.GetId()] = clone(rec.Fault)
		case *raftv1.SnapshotRecord_FaultGroup:
			if rec.FaultGroup.GetId() == "" {
				return fmt.Errorf("snapshot record %d: fault group without id", i)
			}
			d.groups[rec.FaultGroup.GetId()] = clone(rec.FaultGroup)
		case *raftv1.SnapshotRecord_Experiment:
			if rec.Experiment.GetId() == "" || d.experiments[rec.Experiment.GetId()] != nil {
				return fmt.Errorf("snapshot record %d: experiment without id or twice", i)
			}
			x := clone(rec.Experiment)
			d.experiments[x.GetId()] = x
			d.experimentOrder = append(d.experimentOrder, x)
		case *raftv1.SnapshotRecord_Event:
			if last := d.events.last(); last != nil && rec.Event.GetSequence() <= last.GetSequence() {
				return fmt.Errorf("snapshot record %d: event sequence %d out of order", i, rec.Event.GetSequence())
			}
			d.events.push(clone(rec.Event))
		case *raftv1.SnapshotRecord_AppliedRequest:
			d.remember(rec.AppliedRequest.GetRequestId(), rec.AppliedRequest.GetResultId())
		case *raftv1.SnapshotRecord_Audit:
			if !d.restoreAudit(rec.Audit) {
				return fmt.Errorf("snapshot record %d: audit sequence %d out of order", i, rec.Audit.GetSequence())
			}
		default:
			return fmt.Errorf("snapshot record %d: unknown record type", i)
		}
	}
	d.rebuildIndexes()
	d.rebuildGroupIndex()
	if e := d.events.last(); e != nil {
		last := e.GetSequence()
		if !sawCounters || d.nextSeq <= last {
			d.nextSeq = last + 1
		}
	}
	if d.nextSeq == 0 {
		d.nextSeq = 1
	}
	if len(d.audit) > MaxAuditEntries {
		d.audit = d.audit[len(d.audit)-MaxAuditEntries:]
	}
	if n := len(d.audit); n > 0 && d.nextAuditSeq <= d.audit[n-1].GetSequence() {
		d.nextAuditSeq = d.audit[n-1].GetSequence() + 1
	}
	if d.nextAuditSeq == 0 {
		d.nextAuditSeq = 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.d = d
	s.notifyLocked()
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
