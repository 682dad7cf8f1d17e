package report

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Validate checks that r is a report the renderers can show truthfully
// and returns every problem found, each naming its field ("steps[1].
// target") and what was expected, or nil. The runner's tests call it on
// the reports they build; the renderers do not need it (they show
// whatever they are given, see FuzzRender).
//
// Beyond well-formed fields it checks the report agrees with itself: an
// ABORTED report has an Abort and only it does, a REFUSED one never ran
// its during and after phases, steps and host series name targets that
// exist, host series belong to the target's chosen agents, and samples,
// points and events are in time order.
func (r *Report) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}

	if r.Version < 1 {
		bad("version", "%d, want at least 1", r.Version)
	}
	if r.ID == "" {
		bad("id", "empty")
	}
	if r.Name == "" {
		bad("name", "empty")
	}
	states := []State{StateCompleted, StateAborted, StateRefused, StateFailed, StateRunning}
	if !slices.Contains(states, r.State) {
		bad("state", "%q, want one of %v", r.State, states)
	}
	for _, v := range []struct {
		field string
		v     Verdict
	}{{"before", r.Before}, {"during", r.During}, {"after", r.After}} {
		if !slices.Contains([]Outcome{Pass, Fail, NotRun}, v.v.Outcome) {
			bad(v.field+".outcome", "%q, want PASS, FAIL or NOT_RUN", v.v.Outcome)
		}
	}
	if r.State == StateRefused {
		if r.During.Outcome != NotRun || r.After.Outcome != NotRun {
			bad("during, after", "a REFUSED experiment never ran them: want NOT_RUN, have %s and %s", r.During.Outcome, r.After.Outcome)
		}
	}

	if r.StartedAt.IsZero() {
		bad("started_at", "missing")
	}
	switch {
	case r.State == StateRunning && !r.EndedAt.IsZero():
		bad("ended_at", "set on a RUNNING experiment")
	case r.State != StateRunning && r.EndedAt.IsZero():
		bad("ended_at", "missing, and state %s has ended", r.State)
	case !r.EndedAt.IsZero() && r.EndedAt.Before(r.StartedAt):
		bad("ended_at", "%s is before started_at %s", stamp(r.EndedAt), stamp(r.StartedAt))
	}

	switch {
	case r.State == StateAborted && r.Abort == nil:
		bad("abort", "missing on an ABORTED experiment")
	case r.State != StateAborted && r.Abort != nil:
		bad("abort", "set on a %s experiment", r.State)
	case r.Abort != nil:
		a := r.Abort
		if a.Reason == "" {
			bad("abort.reason", "empty")
		}
		if a.Probe != "" && !slices.ContainsFunc(r.Probes, func(p ProbeSeries) bool { return p.Name == a.Probe }) {
			bad("abort.probe", "%q names no probe of the report", a.Probe)
		}
		if a.Probe != "" && a.SampleAt.IsZero() {
			bad("abort.sample_at", "missing for an abort caused by probe %q", a.Probe)
		}
	}

	targets := map[string]*Target{}
	for i := range r.Targets {
		t := &r.Targets[i]
		f := fmt.Sprintf("targets[%d]", i)
		switch {
		case t.Name == "":
			bad(f+".name", "empty")
		case targets[t.Name] != nil:
			bad(f+".name", "%q used twice", t.Name)
		}
		targets[t.Name] = t
	}

	steps := map[string]bool{}
	for i, st := range r.Steps {
		f := fmt.Sprintf("steps[%d]", i)
		switch {
		case st.Name == "":
			bad(f+".name", "empty")
		case steps[st.Name]:
			bad(f+".name", "%q used twice", st.Name)
		}
		steps[st.Name] = true
		if targets[st.Target] == nil {
			bad(f+".target", "%q names no target of the report", st.Target)
		}
		if st.PlannedStart < 0 || st.PlannedDuration < 0 {
			bad(f+".planned_start, planned_duration", "negative (%s, %s)", st.PlannedStart, st.PlannedDuration)
		}
		if st.Start.IsZero() && !st.End.IsZero() {
			bad(f+".end", "set on a step that never started")
		}
		if !st.Start.IsZero() && !st.End.IsZero() && st.End.Before(st.Start) {
			bad(f+".end", "%s is before its start %s", stamp(st.End), stamp(st.Start))
		}
		for j, m := range st.Agents {
			mf := fmt.Sprintf("%s.agents[%d]", f, j)
			if m.Agent == "" {
				bad(mf+".agent", "empty")
			}
			if m.State == "" {
				bad(mf+".state", "empty")
			}
			if !m.Start.IsZero() && !m.End.IsZero() && m.End.Before(m.Start) {
				bad(mf+".end", "%s is before its start %s", stamp(m.End), stamp(m.Start))
			}
		}
	}

	probes := map[string]bool{}
	kinds := []string{KindHTTP, KindPrometheus, KindHost, KindErrorBudget}
	for i := range r.Probes {
		p := &r.Probes[i]
		f := fmt.Sprintf("probes[%d]", i)
		switch {
		case p.Name == "":
			bad(f+".name", "empty")
		case probes[p.Name]:
			bad(f+".name", "%q used twice", p.Name)
		}
		probes[p.Name] = true
		if !slices.Contains(kinds, p.Kind) {
			bad(f+".kind", "%q, want one of %v", p.Kind, kinds)
		}
		if p.Min != nil && p.Max != nil && *p.Min > *p.Max {
			bad(f+".min", "%s is above max %s", num(*p.Min), num(*p.Max))
		}
		if p.Dropped < 0 {
			bad(f+".dropped", "%d, want 0 or more", p.Dropped)
		}
		if j := unordered(len(p.Samples), func(k int) time.Time { return p.Samples[k].At }); j > 0 {
			bad(fmt.Sprintf("%s.samples[%d].at", f, j), "before the sample ahead of it: samples must be in time order")
		}
	}

	for i, h := range r.Hosts {
		f := fmt.Sprintf("hosts[%d]", i)
		t := targets[h.Target]
		switch {
		case t == nil:
			bad(f+".target", "%q names no target of the report", h.Target)
		case !slices.Contains(t.Agents, h.Agent):
			bad(f+".agent", "%q is not one of target %s's chosen agents %v", h.Agent, h.Target, t.Agents)
		}
		for _, m := range slices.Sorted(maps.Keys(h.Metrics)) {
			pts := h.Metrics[m]
			if j := unordered(len(pts), func(k int) time.Time { return pts[k].At }); j > 0 {
				bad(fmt.Sprintf("%s.metrics[%s][%d].at", f, m, j), "before the point ahead of it: points must be in time order")
			}
		}
	}

	if j := unordered(len(r.Events), func(k int) time.Time { return r.Events[k].At }); j > 0 {
		bad(fmt.Sprintf("events[%d].at", j), "before the event ahead of it: events must be in time order")
	}
	if r.DroppedEvents < 0 {
		bad("dropped_events", "%d, want 0 or more", r.DroppedEvents)
	}

	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("report %q: %w", r.ID, errors.Join(errs...))
}

// unordered returns the index of the first of n times that is before
// the one ahead of it, or 0 when they are in order.
func unordered(n int, at func(int) time.Time) int {
	for i := 1; i < n; i++ {
		if at(i).Before(at(i - 1)) {
			return i
		}
	}
	return 0
}
