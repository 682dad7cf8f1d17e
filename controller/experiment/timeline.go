package experiment

import "time"

// Window is when one step's fault lives, counted from the experiment's
// start (the moment the steady state was found to hold).
type Window struct {
	Step   string        `json:"step"`
	Target string        `json:"target"`
	Start  time.Duration `json:"start"`
	End    time.Duration `json:"end"`
}

// Timeline returns each step's window, in the order of the file, with
// After resolved: a step with After starts Start after the named step
// ends. The plan, the runner and the report all read the timeline from
// here, so they cannot disagree. It is meant for a valid spec; on one
// with an After cycle or an unknown After, the broken link counts from
// the experiment's start.
func (s *Spec) Timeline() []Window {
	byName := make(map[string]int, len(s.Steps))
	for i, st := range s.Steps {
		if _, dup := byName[st.Name]; !dup {
			byName[st.Name] = i
		}
	}
	const (
		unseen = iota
		visiting
		done
	)
	state := make([]int, len(s.Steps))
	out := make([]Window, len(s.Steps))
	var resolve func(i int) time.Duration // returns the step's end
	resolve = func(i int) time.Duration {
		switch state[i] {
		case done:
			return out[i].End
		case visiting:
			return 0 // a cycle: count from the start
		}
		state[i] = visiting
		st := s.Steps[i]
		var base time.Duration
		if j, ok := byName[st.After]; ok && st.After != "" {
			base = resolve(j)
		}
		start := base + st.Start.D()
		out[i] = Window{Step: st.Name, Target: st.Target, Start: start, End: start + st.Duration.D()}
		state[i] = done
		return out[i].End
	}
	for i := range s.Steps {
		resolve(i)
	}
	return out
}

// End is when the last step's fault ends, counted from the start: the
// length of the fault part of the experiment (Recovery comes after).
func (s *Spec) End() time.Duration {
	var end time.Duration
	for _, w := range s.Timeline() {
		end = max(end, w.End)
	}
	return end
}
