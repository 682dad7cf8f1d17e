package fleetsim

import (
	"context"
	"sync"
	"time"

	"github.com/turbulence-sre/turbulence/agent/inject"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Receipt is what one simulated agent's recording injector saw of one
// fault. Times carry Go's monotonic clock reading, so differences between
// them (and with a time.Now taken by the caller) are immune to wall-clock
// steps.
type Receipt struct {
	AgentID string
	FaultID string
	Kind    string
	// Deadline is the deadline the agent's Manager gave the fault: the
	// earlier of the controller's and now+duration.
	Deadline time.Time
	// AppliedAt is when the injector's Apply was called; RevertedAt when
	// its Handle's Revert was, zero while the fault is held.
	AppliedAt  time.Time
	RevertedAt time.Time
}

// recorder is the simulated host of one agent: one inject.Injector per
// fault kind, all writing to the same ledger. It changes nothing outside
// the process; the real inject.Manager above it keeps the deadline, lease
// and halt rules exactly as on a host.
type recorder struct {
	agentID string
	// notify is told of every apply and revert (Fleet's index); nil for
	// none. It is called without mu held.
	notify func(Receipt)

	mu       sync.Mutex
	receipts map[string]*Receipt // by fault ID
}

func newRecorder(agentID string, notify func(Receipt)) *recorder {
	return &recorder{agentID: agentID, notify: notify, receipts: make(map[string]*Receipt)}
}

// injectors returns one recording injector for each kind.
func (r *recorder) injectors(kinds []string) []inject.Injector {
	out := make([]inject.Injector, 0, len(kinds))
	for _, k := range kinds {
		out = append(out, &recordingInjector{kind: k, rec: r})
	}
	return out
}

// receipt returns a copy of what was recorded for faultID.
func (r *recorder) receipt(faultID string) (Receipt, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rc, ok := r.receipts[faultID]
	if !ok {
		return Receipt{}, false
	}
	return *rc, true
}

// all returns a copy of every receipt.
func (r *recorder) all() []Receipt {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Receipt, 0, len(r.receipts))
	for _, rc := range r.receipts {
		out = append(out, *rc)
	}
	return out
}

func (r *recorder) applied(kind string, f *turbulencev1.Fault, deadline time.Time) {
	now := time.Now() // first: the timestamp is the command's arrival here
	rc := &Receipt{AgentID: r.agentID, FaultID: f.GetId(), Kind: kind, Deadline: deadline, AppliedAt: now}
	r.mu.Lock()
	// The Manager applies a fault ID once (a repeated ApplyFault answers
	// the held status), so this never overwrites a receipt.
	r.receipts[rc.FaultID] = rc
	cp := *rc
	r.mu.Unlock()
	if r.notify != nil {
		r.notify(cp)
	}
}

func (r *recorder) reverted(faultID string) {
	now := time.Now()
	r.mu.Lock()
	rc, ok := r.receipts[faultID]
	if !ok || !rc.RevertedAt.IsZero() {
		// Revert is idempotent (inject.Handle): the first call counts.
		r.mu.Unlock()
		return
	}
	rc.RevertedAt = now
	cp := *rc
	r.mu.Unlock()
	if r.notify != nil {
		r.notify(cp)
	}
}

// recordingInjector is an inject.Injector for one kind that applies
// nothing and records everything.
type recordingInjector struct {
	kind string
	rec  *recorder
}

func (ri *recordingInjector) Kind() string { return ri.kind }

func (ri *recordingInjector) Apply(_ context.Context, f *turbulencev1.Fault, deadline time.Time) (inject.Handle, error) {
	ri.rec.applied(ri.kind, f, deadline)
	return &recordedHandle{id: f.GetId(), rec: ri.rec}, nil
}

// recordedHandle is a fault "on the simulated host": it ends only when the
// Manager reverts it (deadline, revert, halt, lease, close), as a kind
// without a worker does.
type recordedHandle struct {
	id  string
	rec *recorder
}

func (h *recordedHandle) Revert(context.Context) error {
	h.rec.reverted(h.id)
	return nil
}

func (*recordedHandle) Observe(*turbulencev1.FaultStatus) {}

// Done is nil: a recorded fault never ends by itself.
func (*recordedHandle) Done() <-chan struct{} { return nil }
func (*recordedHandle) Err() error            { return nil }
func (*recordedHandle) Undo() []byte          { return nil }
