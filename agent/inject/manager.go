package inject

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/turbulence-sre/turbulence/agent/guardian"
	"github.com/turbulence-sre/turbulence/internal/faultspec"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

const (
	// revertTimeout bounds one Handle.Revert. A worker's Stop needs at most
	// its SIGTERM grace plus the SIGKILL; ten seconds leaves room.
	revertTimeout = 10 * time.Second
	// deadlineTolerance: a worker that exits cleanly this close to its
	// deadline ended because of it (it keeps its own timer, defence in
	// depth), not because something went wrong.
	deadlineTolerance = 250 * time.Millisecond
	// maxEndedHistory bounds the memory of ended fault IDs kept so that a
	// repeated ApplyFault does not run an ended fault a second time.
	maxEndedHistory = 1024
)

// Manager holds the faults of this agent by ID. See the package doc for
// the invariants it enforces.
type Manager struct {
	log       *slog.Logger
	injectors map[string]Injector

	mu         sync.Mutex
	held       map[string]*entry
	ended      map[string]*turbulencev1.FaultStatus // by ID, bounded by endedFIFO
	endedFIFO  []string
	unreported []endedRecord // ended faults not yet acknowledged by a heartbeat
	seq        uint64
	halted     bool       // fleet halt (HaltAgent / Welcome.halted)
	local      *LocalHalt // local halt (turbulence-agent halt); see localhalt.go
	closed     bool
	// unrecovered is why start-up recovery is incomplete; see guard.go.
	unrecovered error
	guard       guard // local policy and journal; guard.go

	watchers sync.WaitGroup // one per applied handle, waiting for Done

	// endedSignal gets a value, without blocking, whenever a fault ends,
	// so that the session reports it at once instead of at the next beat.
	endedSignal chan struct{}

	// stopRetries is closed by Close: the revert retries stop and leave
	// what is still stuck to the journal (retry.go).
	stopRetries chan struct{}

	// observer counts applies and ends for the metrics (observer.go);
	// nil tells no one.
	observer Observer
}

// endedRecord is an ended fault waiting to be reported.
type endedRecord struct {
	seq    uint64
	status *turbulencev1.FaultStatus
}

// entry is one held fault. Fields other than the immutable ones are
// guarded by Manager.mu.
type entry struct {
	id       string
	kind     string
	deadline time.Time
	done     chan struct{} // closed once the fault is fully ended

	timer     *time.Timer
	handle    Handle // nil while the injector's Apply runs
	appliedAt time.Time
	ending    bool
	reason    string
	// revertErr is the last failed revert; while it is set the fault is
	// still on the host and retryRevert keeps trying (retry.go).
	revertErr      error
	revertAttempts int
	// guardian guards a fault of a guarded kind (nil otherwise); its
	// outcome, when the guardian took the fault back before the agent did,
	// is guardianOutcome.
	guardian        *guardian.Guardian
	guardianOutcome *guardian.Outcome
	// guardedKind: the fault's kind has no worker (Kind.Guarded), so its
	// undo record is the only way back after a crash.
	guardedKind bool
	// last is the latest status observed while the fault ran and no
	// revert had begun: its ended status keeps that measured effect
	// (what the fault achieved), where an observation after the revert
	// would read zeros.
	last *turbulencev1.FaultStatus
}

// NewManager returns a Manager that dispatches to injectors by Kind.
func NewManager(logger *slog.Logger, injectors ...Injector) *Manager {
	m := &Manager{
		log:       logger.With("component", "inject"),
		injectors: make(map[string]Injector, len(injectors)),
		held:      make(map[string]*entry),
		ended:     make(map[string]*turbulencev1.FaultStatus),

		endedSignal: make(chan struct{}, 1),
		stopRetries: make(chan struct{}),
	}
	for _, in := range injectors {
		m.injectors[in.Kind()] = in
	}
	return m
}

// Kinds returns the fault kinds this Manager can apply, sorted.
func (m *Manager) Kinds() []string {
	return slices.Sorted(maps.Keys(m.injectors))
}

// Apply applies f and returns its status. Applying a fault ID that is held
// or has ended is a no-op that returns the current status. A refusal
// changes nothing and wraps one of the package's Err values or a
// *faultspec.Error.
func (m *Manager) Apply(ctx context.Context, f *turbulencev1.Fault) (*turbulencev1.FaultStatus, error) {
	id := f.GetId()
	if id == "" {
		return nil, fmt.Errorf("%w: fault.id is required", ErrInvalidFault)
	}
	// Invariant 6: validate before anything is registered or applied.
	if err := faultspec.Validate(f.GetSpec()); err != nil {
		return nil, err
	}
	kind := faultspec.Kind(f.GetSpec())
	inj, ok := m.injectors[kind]
	if !ok {
		return nil, fmt.Errorf("%w %q: this agent implements %s", ErrUnsupportedKind, kind, strings.Join(m.Kinds(), ", "))
	}
	now := time.Now()
	deadline := now.Add(f.GetSpec().GetDuration().AsDuration())
	if d := f.GetDeadline(); d != nil && d.AsTime().Before(deadline) {
		// The controller's deadline is a wall-clock time. It becomes a
		// time on this process's monotonic clock here, on arrival, so
		// that a step of the wall clock later moves no deadline: not the
		// timer's, not the enforcement loop's, not the guardian's or the
		// worker's (docs/design.md, "Clocks").
		deadline = now.Add(d.AsTime().Sub(now))
	}
	if !deadline.After(now) {
		return nil, fmt.Errorf("%w: deadline %s is %s ago", ErrDeadlinePassed, deadline.UTC().Format(time.RFC3339Nano), now.Sub(deadline).Round(time.Millisecond))
	}

	m.mu.Lock()
	if e, ok := m.held[id]; ok {
		m.mu.Unlock()
		return m.observe(e), nil
	}
	if st, ok := m.ended[id]; ok {
		m.mu.Unlock()
		return proto.CloneOf(st), nil
	}
	// Invariant 5: refused while stopping or halted, fleet or local.
	if err := m.refusalLocked(); err != nil {
		m.mu.Unlock()
		return nil, err
	}
	// The host's own policy has the last word on what runs here.
	if err := m.admitLocked(f.GetSpec(), now); err != nil {
		m.mu.Unlock()
		return nil, err
	}
	e := &entry{id: id, kind: kind, deadline: deadline, done: make(chan struct{})}
	if k, ok := inj.(Kind); ok {
		e.guardedKind = k.Guarded()
	}
	// Invariant 1: arm the revert timer before applying. From here on the
	// fault ends at its deadline whatever Apply below does or how long it
	// takes.
	e.timer = time.AfterFunc(deadline.Sub(now), func() { m.end(id, ReasonDeadline) })
	m.held[id] = e
	m.mu.Unlock()

	// Invariant 3: the fault is on disk before it is on the host.
	if err := m.journalIntent(f, e); err != nil {
		m.forget(e)
		return nil, err
	}
	// Invariant 3: a fault without a worker gets a guardian before it is
	// applied, so that it ends even if the agent dies during the apply.
	if starter := m.guarded(inj); starter != nil {
		g, err := starter.Start(id)
		if err != nil {
			m.journalEnded(id)
			m.forget(e)
			return nil, err
		}
		e.guardian = g
	}
	h, err := inj.Apply(WithUndoRecorder(ctx, m.undoRecorder(e)), proto.CloneOf(f), deadline)
	if err != nil {
		// The injector left nothing behind: the guardian must not act.
		m.notApplied(e)
	} else if jerr := m.journalApplied(e, h); jerr != nil {
		// Invariant 3: a fault whose revert data is not on disk could not
		// be taken back after a crash. Take it back now and refuse it; if
		// even that fails, it is on the host: it ends below like a fault
		// whose deadline came during Apply, and its revert is retried.
		m.log.Error("journal: applied record lost; taking the fault back", "fault_id", id, "err", jerr)
		rctx, cancel := context.WithTimeout(context.Background(), revertTimeout)
		rerr := h.Revert(rctx)
		cancel()
		if rerr == nil {
			m.notApplied(e)
			err = jerr
		} else {
			m.mu.Lock()
			e.ending, e.reason = true, "not applied: "+jerr.Error()
			m.mu.Unlock()
		}
	}

	if err == nil && e.guardian != nil {
		m.takeBackIfOvertaken(e, h)
	}

	m.mu.Lock()
	if err != nil {
		// The injector left nothing behind (its contract); forget the fault
		// so that a corrected retry can apply it.
		e.timer.Stop()
		delete(m.held, id)
		close(e.done)
		m.mu.Unlock()
		return nil, fmt.Errorf("apply %s fault: %w", kind, err)
	}
	e.handle = h
	e.appliedAt = time.Now()
	endNow, reason := e.ending, e.reason
	m.mu.Unlock()

	m.watchers.Add(1)
	go m.watch(e, h)
	m.obs().FaultApplied(kind)
	m.log.Info("fault applied", "fault_id", id, "kind", kind, "deadline", deadline)
	if endNow {
		// A deadline, halt or revert arrived while Apply ran, or the
		// journal lost the fault's undo data.
		// Its status says so (REVERTED, or REVERTING while the revert is
		// retried): the apply happened, and this is what became of it.
		m.revert(e, reason)
		return m.statusOf(e), nil
	}
	return m.observe(e), nil
}

// takeBackIfOvertaken: a guardian that ended e while its apply ran (the
// agent frozen mid-apply past the fault's end) left what the apply did
// after that on the host, and the agent's revert would find the
// guardian's outcome and leave the host alone. So the agent takes its
// apply back here, under the fault's lock, and the fault ends at once
// with the guardian's reason.
func (m *Manager) takeBackIfOvertaken(e *entry, h Handle) {
	o, found, err := e.guardian.Overtaken(func() error {
		rctx, cancel := context.WithTimeout(context.Background(), revertTimeout)
		defer cancel()
		return h.Revert(rctx)
	})
	if !found {
		if err != nil {
			m.log.Error("guardian: cannot read the fault's outcome after its apply", "fault_id", e.id, "err", err)
		}
		return
	}
	if err != nil {
		m.log.Error("the guardian ended this fault during its apply, and taking back what the apply left failed", "fault_id", e.id, "err", err)
	} else {
		m.log.Warn("the guardian ended this fault during its apply; took back what the apply left", "fault_id", e.id, "guardian_reason", o.Reason)
	}
	m.mu.Lock()
	e.ending, e.reason = true, o.Reason
	m.mu.Unlock()
}

// watch ends the fault when its worker exits by itself.
func (m *Manager) watch(e *entry, h Handle) {
	defer m.watchers.Done()
	select {
	case <-e.done:
	case <-h.Done():
		reason := ReasonWorkerExited + "before its deadline"
		if err := h.Err(); err != nil {
			reason = ReasonWorkerExited + err.Error()
			// A worker that ended itself for a reason of the fault's
			// (its owner's lease ran out: agent/worker) names it.
			var own interface{ EndReason() string }
			if errors.As(err, &own) {
				reason = own.EndReason()
			}
		} else if time.Until(e.deadline) <= deadlineTolerance {
			reason = ReasonDeadline
		}
		m.end(e.id, reason)
	}
}

// end starts ending fault id for reason unless it already is ending, and
// returns a channel closed once it has ended. It blocks while it reverts.
func (m *Manager) end(id, reason string) <-chan struct{} {
	m.mu.Lock()
	e, ok := m.held[id]
	if !ok {
		m.mu.Unlock()
		return closedChan
	}
	if e.ending {
		m.mu.Unlock()
		return e.done
	}
	e.ending, e.reason = true, reason
	e.timer.Stop()
	if e.handle == nil {
		// Apply is still running; it reverts as soon as it returns.
		m.mu.Unlock()
		return e.done
	}
	m.mu.Unlock()
	m.revert(e, reason)
	return e.done
}

// notApplied closes e, whose apply left nothing on the host, in the journal
// and ends its guardian: the outcome goes under the guardian's lock first,
// so the guardian never acts on a fault that was not applied.
func (m *Manager) notApplied(e *entry) {
	if e.guardian != nil {
		if _, _, err := e.guardian.Revert("not applied", func() error { return nil }); err != nil {
			m.log.Error("guardian: cannot record that the fault was not applied", "fault_id", e.id, "err", err)
		}
	}
	m.journalEnded(e.id)
	m.closeGuardian(e)
}

// closeGuardian ends e's guardian, once e is closed in the journal.
func (m *Manager) closeGuardian(e *entry) {
	if e.guardian == nil {
		return
	}
	if err := e.guardian.Close(); err != nil {
		m.log.Warn("guardian: remove its lock file", "fault_id", e.id, "err", err)
	}
}

// forget drops e, registered but never applied, so a retry can apply it.
func (m *Manager) forget(e *entry) {
	m.mu.Lock()
	e.timer.Stop()
	delete(m.held, e.id)
	m.mu.Unlock()
	close(e.done)
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// revert takes e back, records it as ended and releases its waiters. A
// revert that fails leaves the fault held and REVERTING, and retryRevert
// goes on trying (retry.go); the waiters are released all the same.
func (m *Manager) revert(e *entry, reason string) {
	if err := m.tryRevert(e); err != nil {
		// L2: never report "unknown" as clean. The fault stays held, so
		// every heartbeat shows it REVERTING with the error, and its
		// journal record stays open for cleanup and the next start.
		m.log.Error("revert failed; retrying", "fault_id", e.id, "kind", e.kind, "err", err)
		m.watchers.Add(1)
		go m.retryRevert(e)
		close(e.done)
		return
	}
	m.finishRevert(e, reason)
	close(e.done)
}

// tryRevert runs one bounded revert of e and records its outcome on e. A
// guarded fault is reverted under its guardian's lock: if the guardian
// took it back first, the host is left alone and the handle only lets go
// of what it holds in memory.
func (m *Manager) tryRevert(e *entry) error {
	// The revert must run even when the caller's context is gone (an agent
	// stopping, a session closing): it gets its own bounded context.
	ctx, cancel := context.WithTimeout(context.Background(), revertTimeout)
	revert := func() error { return e.handle.Revert(ctx) }
	var err error
	if e.guardian == nil {
		err = revert()
	} else {
		m.mu.Lock()
		reason := e.reason
		m.mu.Unlock()
		var (
			o     guardian.Outcome
			taken bool
		)
		o, taken, err = e.guardian.Revert(reason, revert)
		if err == nil && !taken {
			if r, ok := e.handle.(Releaser); ok {
				r.Release()
			}
			m.mu.Lock()
			e.guardianOutcome = &o
			m.mu.Unlock()
		}
	}
	cancel()
	m.mu.Lock()
	e.revertAttempts++
	e.revertErr = err
	m.mu.Unlock()
	return err
}

// finishRevert records e, reverted, as ended: journal, status, held set.
// The status keeps the effect last measured while the fault ran.
func (m *Manager) finishRevert(e *entry, reason string) {
	m.journalEnded(e.id)
	m.closeGuardian(e)
	m.mu.Lock()
	last := e.last
	m.mu.Unlock()
	st := proto.CloneOf(last)
	if st == nil {
		st = m.observe(e) // ended before anything was measured
	}
	st.State = turbulencev1.FaultState_FAULT_STATE_REVERTED
	st.Reason = reason
	m.mu.Lock()
	if n := e.revertAttempts; n > 1 {
		st.Reason = fmt.Sprintf("%s (reverted at attempt %d)", reason, n)
	}
	if o := e.guardianOutcome; o != nil {
		// The guardian's own end: its reason and when it took it back.
		st.Reason = o.Reason
		st.EndedAt = timestamppb.New(o.At)
	}
	delete(m.held, e.id)
	m.recordEndedLocked(st)
	m.mu.Unlock()
	// The time the end is recorded with (the guardian's, or the moment
	// just above) is the one measured against the deadline.
	m.obs().FaultEnded(e.kind, st.GetReason(), e.deadline, st.GetEndedAt().AsTime())
	m.log.Info("fault reverted", "fault_id", e.id, "kind", e.kind, "reason", st.GetReason())
}

// recordEndedLocked queues st, an ended fault's status, for the next
// report. Its ended_at is the moment the agent saw the end, unless the
// caller knew better: the controller records that time, not the moment
// it heard (invariant 8, docs/protocol.md step 5), which may be a reconnect later.
func (m *Manager) recordEndedLocked(st *turbulencev1.FaultStatus) {
	if st.GetEndedAt() == nil {
		st.EndedAt = timestamppb.Now()
	}
	select {
	case m.endedSignal <- struct{}{}:
	default: // a report is already due
	}
	m.seq++
	m.unreported = append(m.unreported, endedRecord{seq: m.seq, status: st})
	m.ended[st.GetFaultId()] = st
	m.endedFIFO = append(m.endedFIFO, st.GetFaultId())
	if len(m.endedFIFO) > maxEndedHistory {
		delete(m.ended, m.endedFIFO[0])
		m.endedFIFO = m.endedFIFO[1:]
	}
}

// Ended returns a channel that receives a value after one or more faults
// ended, so that a heartbeat can report them at once.
func (m *Manager) Ended() <-chan struct{} { return m.endedSignal }

// observe returns e's status as the agent reports a held fault.
func (m *Manager) observe(e *entry) *turbulencev1.FaultStatus {
	m.mu.Lock()
	st := &turbulencev1.FaultStatus{
		FaultId:  e.id,
		State:    turbulencev1.FaultState_FAULT_STATE_ACTIVE,
		Deadline: timestamppb.New(e.deadline),
	}
	h := e.handle
	if !e.appliedAt.IsZero() {
		st.AppliedAt = timestamppb.New(e.appliedAt)
	}
	if e.revertErr != nil {
		st.State = turbulencev1.FaultState_FAULT_STATE_REVERTING
		st.Reason = fmt.Sprintf("%s; revert failed %d time(s), retrying: %v", e.reason, e.revertAttempts, e.revertErr)
	}
	m.mu.Unlock()
	if h != nil {
		h.Observe(st) // may read /proc: outside the lock
		m.mu.Lock()
		// Once ending is set a revert may be under way and the reading
		// may be of a fault half gone; keep the last one from before.
		if !e.ending && e.revertErr == nil {
			e.last = proto.CloneOf(st)
		}
		m.mu.Unlock()
	}
	return st
}

// statusOf returns e's status once a revert has run: the ended record, or
// the held REVERTING status while the revert is being retried.
func (m *Manager) statusOf(e *entry) *turbulencev1.FaultStatus {
	if st := m.endedStatus(e.id); st != nil {
		return st
	}
	return m.observe(e)
}

func (m *Manager) endedStatus(id string) *turbulencev1.FaultStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	return proto.CloneOf(m.ended[id])
}
