package benchreport

import (
	"fmt"
	"strings"
)

// Target is a bound that one figure of one point must meet.
type Target struct {
	Label  string
	Family string // a family's name: "BenchmarkFleet/nodes=3"
	X      float64
	Unit   string
	Max    float64 // the figure's median must be at most this
	// Shown is the unit as written after a number ("ms", "KB per
	// agent"); empty: the unit's last word.
	Shown string
	// Measured and Found are filled by Evaluate.
	Measured float64
	Found    bool
}

// Evaluate fills each target's measured median from the report.
func Evaluate(r Report, targets []Target) []Target {
	out := make([]Target, len(targets))
	for i, t := range targets {
		for _, f := range r.Families {
			if f.Name != t.Family {
				continue
			}
			for _, p := range f.Points {
				if fig, ok := p.Figures[t.Unit]; ok && p.X == t.X {
					t.Measured, t.Found = fig.Median, true
				}
			}
		}
		out[i] = t
	}
	return out
}

// TargetText is the bound as written in the table.
func (t Target) TargetText() string { return "≤ " + num(t.Max) + " " + t.shown() }

func (t Target) shown() string {
	if t.Shown != "" {
		return t.Shown
	}
	return unitName(t.Unit)
}

// MeasuredText is the measured median, or that there was none.
func (t Target) MeasuredText() string {
	if !t.Found {
		return "not measured"
	}
	return num(t.Measured) + " " + t.shown()
}

// Verdict says whether the target is met and, if not, by how much it is
// missed.
func (t Target) Verdict() string {
	switch {
	case !t.Found:
		return "—"
	case t.Measured <= t.Max:
		return "met"
	case t.Max == 0:
		return fmt.Sprintf("missed by %s", num(t.Measured))
	default:
		return fmt.Sprintf("missed by %s %s (%.1f× the target)", num(t.Measured-t.Max), t.shown(), t.Measured/t.Max)
	}
}

// unitName is a unit without the figure's name in front of it: the
// suffix after the last '-' ("attach-max-ms" → "ms").
func unitName(u string) string {
	if i := strings.LastIndexByte(u, '-'); i >= 0 {
		return u[i+1:]
	}
	return ""
}
