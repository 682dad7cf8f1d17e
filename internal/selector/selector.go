package selector

import (
	"fmt"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"

	"github.com/turbulence-sre/turbulence/internal/limits"
)

// Selector is a parsed label selector. The zero value matches every set
// of labels.
type Selector struct {
	sel labels.Selector // nil matches everything
}

// Parse parses a selector. The empty string (or only spaces) matches
// every agent. A selector longer than limits.MaxSelector, one that breaks
// the grammar, or one that uses an operator outside it is refused with an
// error that says why; the caller prefixes the field's name.
func Parse(text string) (Selector, error) {
	if len(text) > limits.MaxSelector {
		return Selector{}, fmt.Errorf("is %d bytes, above the limit of %d bytes", len(text), limits.MaxSelector)
	}
	sel, err := labels.Parse(text)
	if err != nil {
		return Selector{}, fmt.Errorf("%q is not a label selector: %w", text, err)
	}
	reqs, _ := sel.Requirements()
	for _, r := range reqs {
		var op string
		switch r.Operator() {
		case selection.GreaterThan:
			op = ">"
		case selection.LessThan:
			op = "<"
		default:
			continue
		}
		return Selector{}, fmt.Errorf("%q: operator %q on key %q is not supported (use =, ==, !=, in, notin, k or !k)",
			text, op, r.Key())
	}
	if sel.Empty() {
		return Selector{}, nil
	}
	return Selector{sel: sel}, nil
}

// Matches reports whether a set of labels satisfies every requirement.
func (s Selector) Matches(set map[string]string) bool {
	if s.sel == nil {
		return true
	}
	return s.sel.Matches(labels.Set(set))
}

// Empty reports whether the selector matches everything.
func (s Selector) Empty() bool { return s.sel == nil }

// String renders the selector in its canonical form: requirements sorted
// by key, the values of in and notin sorted. Parse(s.String()) gives back
// the same selector.
func (s Selector) String() string {
	if s.sel == nil {
		return ""
	}
	return s.sel.String()
}
