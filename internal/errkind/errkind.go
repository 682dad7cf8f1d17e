// Package errkind pairs a message for people with a sentinel for code: an
// error that reads as its message and matches its kind with errors.Is.
// The controller's state and API packages word their refusals this way so
// that one place maps kinds to gRPC codes and the message is never lost.
package errkind

import "fmt"

// Error is a message with a kind.
type Error struct {
	kind error
	msg  string
}

func (e *Error) Error() string { return e.msg }

// Unwrap returns the kind, for errors.Is.
func (e *Error) Unwrap() error { return e.kind }

// Errorf formats a message and gives it kind.
func Errorf(kind error, format string, args ...any) error {
	return &Error{kind: kind, msg: fmt.Sprintf(format, args...)}
}
