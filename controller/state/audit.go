package state

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/turbulence-sre/turbulence/internal/limits"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// MaxAuditEntries is how many of the latest audit records are kept. At a
// few hundred bytes each, 100 000 records cost some tens of MiB of memory
// and of snapshot on every controller node; they are the last weeks or
// months of a busy fleet's mutating calls. Older records are dropped
// oldest first; ship the log elsewhere (turbctl audit ls -o json) to keep
// it longer.
const MaxAuditEntries = 100_000

// AuditRecord is what an entry says about the mutating call that made it.
type AuditRecord struct {
	// Action is the machine-readable verb ("fault.apply").
	Action string
	// Summary is one line for people.
	Summary string
}

// ApplyAudit appends one audit record stamped with the entry's meta (who,
// when, request ID). applyErr is the command's rejection, if any: a
// refused write is recorded too, with its reason, since a denied attempt
// is what a security review looks for first.
//
// The FSM calls it in the same Apply as the command, so the write and its
// record are one raft entry: either both are committed or neither is
// (docs/users.md R1: the kill switch leaves a log entry).
func (s *State) ApplyAudit(m Meta, rec AuditRecord, applyErr error) *turbulencev1.AuditEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := &turbulencev1.AuditEntry{
		Sequence:  s.d.nextAuditSeq,
		Time:      timestamppb.New(m.Time),
		Actor:     m.Actor,
		RequestId: m.RequestID,
		Action:    rec.Action,
		Summary:   rec.Summary,
	}
	if applyErr != nil {
		// Bounded like every record field (docs/limits.md).
		e.Error = limits.Truncate(applyErr.Error(), limits.MaxAuditError)
	}
	s.d.nextAuditSeq++
	s.d.appendAudit(e)
	s.notifyLocked()
	return clone(e)
}

// appendAudit keeps at most MaxAuditEntries, dropping the oldest.
func (d *data) appendAudit(e *turbulencev1.AuditEntry) {
	d.audit = append(d.audit, e)
	if over := len(d.audit) - MaxAuditEntries; over > 0 {
		// Reslice: the dropped head stays in the backing array until the
		// next append outgrows it and copies only the live records, so
		// a write at the cap costs O(1) amortised and memory stays
		// below twice the cap. Clear the pointers so the records can be
		// collected now.
		clear(d.audit[:over])
		d.audit = d.audit[over:]
	}
}

// AuditFilter selects audit records. The zero value selects all of them.
type AuditFilter struct {
	// Actor, when set, keeps only this caller's records.
	Actor string
	// Action, when set, keeps only records of this action.
	Action string
	// Since and Until, when not zero, keep records with Since <= time <
	// Until.
	Since, Until time.Time
	// Limit caps the records returned; 0 means no cap.
	Limit int
}

// Audit returns copies of the matching audit records, newest first.
func (s *State) Audit(f AuditFilter) []*turbulencev1.AuditEntry {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*turbulencev1.AuditEntry
	for i := len(s.d.audit) - 1; i >= 0; i-- {
		e := s.d.audit[i]
		if !f.matches(e) {
			continue
		}
		out = append(out, clone(e))
		if f.Limit > 0 && len(out) == f.Limit {
			break
		}
	}
	return out
}

func (f AuditFilter) matches(e *turbulencev1.AuditEntry) bool {
	t := e.GetTime().AsTime()
	switch {
	case f.Actor != "" && e.GetActor() != f.Actor,
		f.Action != "" && e.GetAction() != f.Action,
		!f.Until.IsZero() && !t.Before(f.Until):
		return false
	case !f.Since.IsZero() && t.Before(f.Since):
		// Records are in log order and times are the proposers' clocks,
		// which may step back a little across a leader change, so the
		// scan goes on rather than stop here.
		return false
	}
	return true
}

// restoreAudit checks and installs the audit records of a snapshot.
func (d *data) restoreAudit(e *turbulencev1.AuditEntry) bool {
	if n := len(d.audit); n > 0 && e.GetSequence() <= d.audit[n-1].GetSequence() {
		return false
	}
	d.audit = append(d.audit, clone(e))
	return true
}
