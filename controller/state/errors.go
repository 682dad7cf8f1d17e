package state

import (
	"errors"
	"fmt"
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

// reasonError carries a message for people and a sentinel for code.
type reasonError struct {
	kind error
	msg  string
}

func (e *reasonError) Error() string { return e.msg }
func (e *reasonError) Unwrap() error { return e.kind }

func errorf(kind error, format string, args ...any) error {
	return &reasonError{kind: kind, msg: fmt.Sprintf(format, args...)}
}
