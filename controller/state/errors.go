package state

import (
	"errors"

	"github.com/turbulence-sre/turbulence/internal/errkind"
)

// Sentinel errors of business rejections. The FSM returns them as the
// response of an entry (they are not raft failures); the API layer maps
// them to gRPC codes with errors.Is.
var (
	// ErrNotFound: the fault or agent named does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists: a fault with this ID exists already.
	ErrExists = errors.New("already exists")
	// ErrHalted: the fleet is halted and new faults are refused.
	ErrHalted = errors.New("fleet halted")
	// ErrInvalidTransition: the fault cannot move to the state asked for.
	ErrInvalidTransition = errors.New("invalid fault state transition")
	// ErrInvalidEntry: the command lacks a field it needs.
	ErrInvalidEntry = errors.New("invalid command")
)

// errorf words a refusal for people and gives it a sentinel for code.
var errorf = errkind.Errorf
