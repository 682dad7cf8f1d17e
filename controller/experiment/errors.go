package experiment

import (
	"fmt"
	"strings"

	"github.com/turbulence-sre/turbulence/internal/faultspec"
)

// FieldError is one problem with one field of an experiment file: the
// type of internal/faultspec, so that a fault step's problems and every
// other field's are one list. Its Field is the path of the field in the
// file: "name", "targets.web.count", "steps[2].fault.cpu.load_percent".
type FieldError = faultspec.FieldError

// Error lists every problem found in an experiment file, in the order of
// the file. Parse and Validate return it as a pointer; match it with
// errors.As.
type Error struct {
	Problems []FieldError
}

func (e *Error) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Error()
	}
	return "invalid experiment: " + strings.Join(parts, "; ")
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

// addUnique adds a problem unless the same one is already listed (a
// target's problem seen again from a second step on it).
func (c *collector) addUnique(field, reason string) {
	for _, p := range c.problems {
		if p.Field == field && p.Reason == reason {
			return
		}
	}
	c.problems = append(c.problems, FieldError{Field: field, Reason: reason})
}
