package faultspec

import (
	"fmt"
	"strings"
)

// FieldError is one problem with one field of a spec.
type FieldError struct {
	// Field is the dotted path of the field, e.g. "spec.cpu.load_percent".
	Field string
	// Reason says what is wrong and what the limit is.
	Reason string
}

func (e FieldError) Error() string { return e.Field + ": " + e.Reason }

// Error lists every problem found in a spec. It is returned as a pointer;
// match it with errors.As.
type Error struct {
	Problems []FieldError
}

func (e *Error) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Error()
	}
	return "invalid fault spec: " + strings.Join(parts, "; ")
}

// collector gathers problems while a spec is walked.
type collector struct{ problems []FieldError }

func (c *collector) addf(field, format string, args ...any) {
	c.problems = append(c.problems, FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
}

func (c *collector) err() error {
	if len(c.problems) == 0 {
		return nil
	}
	return &Error{Problems: c.problems}
}
