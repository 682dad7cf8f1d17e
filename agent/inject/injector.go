package inject

import (
	"context"
	"errors"
	"time"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Injector applies faults of one kind.
type Injector interface {
	// Kind is the faultspec kind name this injector implements.
	Kind() string
	// Apply applies f, whose spec has been validated, so that it lasts
	// until deadline at most. On error it must leave nothing behind
	// (invariant 6). ctx bounds the apply itself, not the fault's life.
	Apply(ctx context.Context, f *turbulencev1.Fault, deadline time.Time) (Handle, error)
}

// Handle is one applied fault.
type Handle interface {
	// Revert takes the fault back. It is idempotent and returns only once
	// nothing of the fault is left (for a worker: it has been waited for).
	Revert(ctx context.Context) error
	// Observe fills the kind-specific fields of st (worker_pid,
	// measured_cpu_percent…). It may run concurrently with Revert.
	Observe(st *turbulencev1.FaultStatus)
	// Done is closed when the fault ended by itself (its worker exited).
	// A nil channel means it never does.
	Done() <-chan struct{}
	// Err says why the fault ended by itself: nil for a clean exit at its
	// deadline. Valid after Done is closed.
	Err() error
	// Undo returns the kind's own record of how to take the fault back
	// with no other memory of it (its Kind.Recover reads it): a worker's
	// PID and start time, a marked directory, an interface's original
	// root qdisc. The Manager journals it right after Apply returns.
	Undo() []byte
}

// Releaser is implemented by handles that hold something in the agent's
// memory (an interface claimed by a fault): Release lets it go without
// touching the host, when the fault's guardian already took it back.
type Releaser interface {
	Release()
}

// Reasons a fault ended, as reported to the controller (docs/protocol.md §5).
const (
	ReasonDeadline        = "deadline"
	ReasonRevertRequested = "revert requested"
	ReasonHalt            = "halt"
	ReasonLeaseExpired    = "lease expired"
	ReasonAgentStopping   = "agent stopping"
	// ReasonWorkerExited is followed by what the worker's exit said.
	ReasonWorkerExited = "worker exited: "
)

// Errors for refused faults. Each is wrapped with details worded for a
// person; match with errors.Is.
var (
	ErrHalted          = errors.New("agent is halted: new faults are refused until resume")
	ErrStopping        = errors.New("agent is stopping: new faults are refused")
	ErrUnsupportedKind = errors.New("unsupported fault kind")
	ErrDeadlinePassed  = errors.New("fault deadline has passed")
	ErrInvalidFault    = errors.New("invalid fault")
)
