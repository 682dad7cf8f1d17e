package state

import (
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/turbulence-sre/turbulence/internal/limits"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Meta is what every log entry carries besides its command.
type Meta struct {
	// RequestID makes a write idempotent. Empty means "do not remember":
	// internal writes (agent reports, lease expiry) are idempotent by
	// their nature and would only push client IDs out of the window.
	RequestID string
	// Actor is the identity of the caller, for the record.
	Actor string
	// Time is the leader's proposed_at. It is the only clock the state
	// ever reads.
	Time time.Time
}

// data is one complete dataset. Replace swaps a whole new one in.
type data struct {
	agents map[string]*turbulencev1.Agent
	faults map[string]*turbulencev1.Fault
	// agentIDs and faultOrder index agents by ID and faults by creation
	// time and ID (the orders of their lists), so that a page starts at
	// its cursor instead of sorting everything (page.go). faultOrder
	// holds the same pointers as faults; creation times never change.
	agentIDs   []string
	faultOrder []*turbulencev1.Fault
	halt       *turbulencev1.HaltStatus
	// events holds at most MaxEvents, oldest first.
	events eventRing
	// nextSeq is the sequence number of the next event; it never goes
	// back, even when old events are dropped.
	nextSeq uint64
	// applied maps request ID to the ID of what it produced; order keeps
	// insertion order so the oldest can be forgotten.
	applied      map[string]string
	appliedOrder []string
	// audit holds at most MaxAuditEntries records, oldest first;
	// nextAuditSeq never goes back, like nextSeq.
	audit        []*turbulencev1.AuditEntry
	nextAuditSeq uint64
	// groups holds fault groups as recorded (members without what is read
	// back from their faults); groupOrder indexes them like faultOrder.
	groups     map[string]*turbulencev1.FaultGroup
	groupOrder []*turbulencev1.FaultGroup
	// experiments holds at most limits.MaxExperiments runs of experiment
	// files; experimentOrder holds the same pointers in creation order.
	experiments     map[string]*turbulencev1.Experiment
	experimentOrder []*turbulencev1.Experiment
}

func newData() *data {
	return &data{
		agents:       make(map[string]*turbulencev1.Agent),
		faults:       make(map[string]*turbulencev1.Fault),
		halt:         &turbulencev1.HaltStatus{},
		nextSeq:      1,
		nextAuditSeq: 1,
		applied:      make(map[string]string),
		groups:       make(map[string]*turbulencev1.FaultGroup),
		experiments:  make(map[string]*turbulencev1.Experiment),
	}
}

// State is the replicated state of one controller node. The zero value is
// not usable; call New.
type State struct {
	mu      sync.RWMutex
	d       *data
	changed chan struct{}
}

// New returns an empty state.
func New() *State {
	return &State{d: newData(), changed: make(chan struct{})}
}

// Changed returns a channel that is closed at the next change of the
// state. Take the channel before reading, so a change between the read
// and the wait is not missed.
func (s *State) Changed() <-chan struct{} {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.changed
}

// notifyLocked wakes every waiter of Changed. Caller holds the write lock.
func (s *State) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// appendEventLocked records an event stamped with the entry's time.
func (d *data) appendEvent(now time.Time, typ, agentID, faultID, msg string) {
	ev := &turbulencev1.Event{
		Sequence: d.nextSeq,
		Time:     timestamppb.New(now),
		Type:     typ,
		AgentId:  agentID,
		FaultId:  faultID,
		// The message quotes bounded parts (a reason, an actor); the cut
		// keeps every event within the bound that pages of events are
		// sized by (docs/limits.md).
		Message: limits.Truncate(msg, limits.MaxEventMessage),
	}
	d.nextSeq++
	d.events.push(ev)
}

// remember records that requestID produced resultID.
func (d *data) remember(requestID, resultID string) {
	if requestID == "" {
		return
	}
	if _, ok := d.applied[requestID]; ok {
		return
	}
	d.applied[requestID] = resultID
	d.appliedOrder = append(d.appliedOrder, requestID)
	if over := len(d.appliedOrder) - MaxAppliedRequests; over > 0 {
		for _, id := range d.appliedOrder[:over] {
			delete(d.applied, id)
		}
		d.appliedOrder = append(d.appliedOrder[:0:0], d.appliedOrder[over:]...)
	}
}

func clone[M proto.Message](m M) M {
	return proto.Clone(m).(M)
}
