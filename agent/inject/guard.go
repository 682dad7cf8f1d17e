package inject

import (
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/turbulence-sre/turbulence/agent/bootclock"
	"github.com/turbulence-sre/turbulence/agent/guardian"
	"github.com/turbulence-sre/turbulence/agent/journal"
	"github.com/turbulence-sre/turbulence/agent/policy"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// guard is what stands between a fault the controller sent and the host:
// the local policy and the journal. Both are optional so that unit tests
// of the Manager's timing need neither; the agent always sets both.
type guard struct {
	policy  *policy.Policy
	host    policy.Host
	rate    *policy.RateLimiter
	journal *journal.Journal
	// guardians starts a guardian for each fault of a guarded kind
	// (agent/guardian); nil starts none (unit tests).
	guardians *guardian.Starter
}

// UsePolicy makes Apply refuse what p does not allow on a host described
// by host (its ActiveFaults is filled in at each Apply). Call it before the
// first Apply.
func (m *Manager) UsePolicy(p policy.Policy, host policy.Host) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.guard.policy = &p
	m.guard.host = host
	m.guard.rate = policy.NewRateLimiter(p.MaxNewFaultsPerMinute)
}

// UseJournal makes the Manager record every fault in j before applying it
// and after taking it back. Call it before the first Apply, after the
// journal's open faults have been reverted (agent start-up does both).
func (m *Manager) UseJournal(j *journal.Journal) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.guard.journal = j
}

// UseGuardians makes the Manager start a guardian, with s, for every fault
// of a guarded kind (Kind.Guarded), after its intent is journaled and
// before it is applied, and revert such faults under the guardian's lock
// (agent/guardian). It needs UseJournal: a guardian knows its fault from
// the journal alone. Call it before the first Apply.
func (m *Manager) UseGuardians(s guardian.Starter) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.guard.guardians = &s
}

// guarded reports whether faults of inj's kind get a guardian here.
func (m *Manager) guarded(inj Injector) *guardian.Starter {
	k, ok := inj.(Kind)
	if !ok || !k.Guarded() {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.guard.journal == nil {
		return nil
	}
	return m.guard.guardians
}

// admitLocked applies the local policy to a new fault. Caller holds m.mu.
// A refusal is a *policy.Refusal naming the rule and the limit.
func (m *Manager) admitLocked(spec *turbulencev1.FaultSpec, now time.Time) error {
	g := &m.guard
	if g.policy == nil {
		return nil
	}
	host := g.host
	host.ActiveFaults = len(m.held)
	if err := g.policy.Check(spec, host); err != nil {
		return err
	}
	// Last, so that a fault refused for another reason does not use up
	// the rate.
	return g.rate.Allow(now)
}

// journalIntent records e before its injector runs (invariant 3: a fault
// is on disk before it is on the host). A fault that cannot be recorded
// is not applied: after a crash nothing would know to take it back.
func (m *Manager) journalIntent(f *turbulencev1.Fault, e *entry) error {
	j := m.journalOrNil()
	if j == nil {
		return nil
	}
	raw, err := proto.Marshal(f)
	if err != nil {
		return err
	}
	rec := journal.Record{Op: journal.OpIntent, FaultID: e.id, Kind: e.kind, At: time.Now(), Deadline: e.deadline, Fault: raw}
	// The guardian judges the deadline on the boot clock: e.deadline
	// carries the monotonic reading it was given on arrival, so this is
	// right even if the wall clock stepped since (docs/design.md, "Clocks").
	if at, err := bootclock.At(e.deadline); err == nil {
		rec.BootDeadline = at
	}
	err = j.Append(rec)
	if err != nil {
		return fmt.Errorf("record the fault in the journal before applying it: %w", err)
	}
	return nil
}

// journalApplied records how to take e back without the agent's memory:
// the handle's own undo record (its kind encodes it). It returns an error
// only when that record was lost for a kind whose faults have no worker:
// a worker is found by its marks, but an interface's original root qdisc
// is known from this record (or the one the kind wrote before it changed
// the host) alone.
func (m *Manager) journalApplied(e *entry, h Handle) error {
	j := m.journalOrNil()
	if j == nil {
		return nil
	}
	err := j.Append(journal.Record{Op: journal.OpApplied, FaultID: e.id, Kind: e.kind, At: time.Now(), Undo: h.Undo()})
	switch {
	case err == nil:
		return nil
	case e.guardedKind:
		return fmt.Errorf("record how to revert it in the journal: %w", err)
	default:
		m.log.Error("journal: applied record lost; the start-up sweep still finds the worker", "fault_id", e.id, "err", err)
		return nil
	}
}

// undoRecorder returns the function a kind calls (RecordUndo) to journal
// its undo record before it changes the host.
func (m *Manager) undoRecorder(e *entry) func([]byte) error {
	return func(undo []byte) error {
		j := m.journalOrNil()
		if j == nil {
			return nil
		}
		return j.Append(journal.Record{Op: journal.OpApplied, FaultID: e.id, Kind: e.kind, At: time.Now(), Undo: undo})
	}
}

// journalEnded closes fault id in the journal once nothing of it is left.
func (m *Manager) journalEnded(id string) {
	j := m.journalOrNil()
	if j == nil {
		return
	}
	if err := j.Append(journal.Record{Op: journal.OpReverted, FaultID: id, At: time.Now()}); err != nil {
		// Harmless for the host: replay reverts a fault that is already
		// gone (the worker's start time no longer matches).
		m.log.Error("journal: reverted record lost", "fault_id", id, "err", err)
	}
}

func (m *Manager) journalOrNil() *journal.Journal {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.guard.journal
}

// ErrUnrecovered refuses new faults while start-up recovery has not taken
// back everything an earlier run of the agent left.
var ErrUnrecovered = errors.New("start-up recovery is incomplete: new faults are refused until what an earlier run left is taken back")

// SetUnrecovered records why start-up recovery is incomplete (nil once it
// completed). While it is set, Apply refuses with ErrUnrecovered
// (invariant 3: nothing new on a host that still carries old faults).
func (m *Manager) SetUnrecovered(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.unrecovered = err
}

// Unrecovered returns why start-up recovery is incomplete, or nil.
func (m *Manager) Unrecovered() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.unrecovered
}

// RecordRecovered reports faults that start-up recovery took back (from
// the journal of an earlier run) as ended, so that the next heartbeat
// tells the controller.
func (m *Manager) RecordRecovered(sts []*turbulencev1.FaultStatus) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, st := range sts {
		m.recordEndedLocked(proto.CloneOf(st))
	}
}
