package inject

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Kind is the whole lifecycle of one fault kind (docs/design.md, "Fault
// kinds"): apply and measure (Injector, Handle), take a fault back from its
// undo record alone (Recover), find and remove its own leftovers (Sweep),
// and say whether its faults need a guardian process (Guarded). A kind
// lives in one package; adding one touches that package and the one
// registration line in agent/kinds.go.
type Kind interface {
	Injector
	// Recover takes back one fault of this kind from what the journal
	// recorded about it, with no other memory: at start-up, in
	// `turbulence-agent cleanup`, and in the fault's guardian. r.Undo is
	// nil when the fault never reached its first undo record, which a kind
	// writes before it changes the host (RecordUndo). It is idempotent:
	// something already gone is success. It touches only marks of its own
	// Owner (invariant 7).
	Recover(ctx context.Context, r Recorded) error
	// Sweep removes this kind's marks that carry its Owner and that no
	// fault in open names, and reports the marks of its kind it found but
	// does not own, without touching them (invariant 7). A mark it cannot
	// read is foreign, never an error.
	Sweep(ctx context.Context, open []Recorded) (Swept, error)
	// Guarded reports whether a fault of this kind needs a guardian: a
	// process that outlives the agent and takes the fault back at its
	// deadline or lease (agent/guardian). Kinds whose work is a worker
	// process do not: the worker ends at its own deadline and dies with
	// the agent.
	Guarded() bool
}

// Recorded is a fault as the journal knows it.
type Recorded struct {
	FaultID string
	// Fault is the fault as received; nil if its record could not be
	// decoded.
	Fault *turbulencev1.Fault
	// Undo is the kind's own undo record, nil if none was written.
	Undo []byte
}

// Swept is what a sweep did.
type Swept struct {
	// Removed are the marks it took back, one line each ("table inet …").
	Removed []string
	// Foreign are marks of its kind that another agent made (or that it
	// could not attribute): left alone and reported.
	Foreign []string
}

// Owner names the agent that makes a mark (invariant 7). Its key is the
// agent's state directory, made absolute: one state directory holds one
// journal, and a journal is what can take a mark back. The agent ID is
// carried for people reading a foreign mark.
type Owner struct {
	AgentID  string
	StateDir string
}

// NewOwner returns the Owner for an agent with this ID and state
// directory.
func NewOwner(agentID, stateDir string) Owner {
	if abs, err := filepath.Abs(stateDir); err == nil {
		stateDir = abs
	}
	return Owner{AgentID: agentID, StateDir: stateDir}
}

// Tag is a short, stable name for the owner, for marks whose names are
// short (nftables tables, ifb devices): 8 hex digits of a hash of the
// state directory.
func (o Owner) Tag() string {
	sum := sha256.Sum256([]byte(o.StateDir))
	return hex.EncodeToString(sum[:4])
}

// String says who the owner is, for logs and marks.
func (o Owner) String() string {
	if o.AgentID == "" {
		return fmt.Sprintf("state dir %s", o.StateDir)
	}
	return fmt.Sprintf("agent %s, state dir %s", o.AgentID, o.StateDir)
}

type undoRecorderKey struct{}

// WithUndoRecorder returns ctx carrying record, which RecordUndo calls. The
// Manager puts one in every Apply's context: it writes the undo record to
// the journal and fsyncs it.
func WithUndoRecorder(ctx context.Context, record func(undo []byte) error) context.Context {
	return context.WithValue(ctx, undoRecorderKey{}, record)
}

// RecordUndo records undo, the kind's own encoding of how to take the fault
// being applied back, before the kind changes the host (invariant 3: a
// fault is on disk before it is on the host). A kind that gets an error
// must not change the host. Without a recorder in ctx (unit tests of a kind
// alone) it does nothing.
func RecordUndo(ctx context.Context, undo []byte) error {
	record, ok := ctx.Value(undoRecorderKey{}).(func([]byte) error)
	if !ok || record == nil {
		return nil
	}
	if err := record(undo); err != nil {
		return fmt.Errorf("record how to revert the fault before applying it: %w", err)
	}
	return nil
}

// EncodeUndo is a kind's undo record u as the journal keeps it (JSON).
func EncodeUndo(u any) []byte {
	b, err := json.Marshal(u)
	if err != nil {
		panic(fmt.Sprintf("encode an undo record: %v", err)) // undo records are plain data
	}
	return b
}

// DecodeUndo reads r's undo record into a T; ok is false when the journal
// has none (the fault never reached its first undo record).
func DecodeUndo[T any](r Recorded) (u T, ok bool, err error) {
	if len(r.Undo) == 0 {
		return u, false, nil
	}
	if err := json.Unmarshal(r.Undo, &u); err != nil {
		return u, false, fmt.Errorf("fault %s: undo record: %w", r.FaultID, err)
	}
	return u, true, nil
}
