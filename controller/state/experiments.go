package state

import (
	"slices"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/turbulence-sre/turbulence/internal/limits"
	raftv1 "github.com/turbulence-sre/turbulence/proto/turbulence/raft/v1"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// ExperimentLive reports whether an experiment in state st may still
// change: PENDING or RUNNING.
func ExperimentLive(st turbulencev1.ExperimentState) bool {
	return st == turbulencev1.ExperimentState_EXPERIMENT_STATE_PENDING || st == turbulencev1.ExperimentState_EXPERIMENT_STATE_RUNNING
}

// ApplyCreateExperiment records a new experiment, PENDING. A request ID
// seen before returns the experiment it created then. When the state
// holds limits.MaxExperiments already, the oldest ended one is forgotten;
// when every one of them is live, the entry is refused.
func (s *State) ApplyCreateExperiment(m Meta, x *turbulencev1.Experiment) (*turbulencev1.Experiment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id, ok := s.d.applied[m.RequestID]; ok && m.RequestID != "" {
		if prev, ok := s.d.experiments[id]; ok {
			return clone(prev), nil
		}
	}
	switch {
	case x.GetId() == "":
		return nil, errorf(ErrInvalidEntry, "create experiment: id is required")
	case s.d.experiments[x.GetId()] != nil:
		return nil, errorf(ErrExists, "experiment %q already exists", x.GetId())
	}
	// Invariant 5: an experiment exists to apply faults; none starts on a
	// halted fleet.
	if s.d.halt.GetHalted() {
		return nil, errorf(ErrHalted, "fleet halted by %s: %s", s.d.halt.GetBy(), s.d.halt.GetReason())
	}
	if len(s.d.experimentOrder) >= limits.MaxExperiments {
		i := slices.IndexFunc(s.d.experimentOrder, func(x *turbulencev1.Experiment) bool { return !ExperimentLive(x.GetState()) })
		if i < 0 {
			return nil, errorf(ErrInvalidEntry, "create experiment: %d experiments are live, the most the controller keeps", len(s.d.experimentOrder))
		}
		delete(s.d.experiments, s.d.experimentOrder[i].GetId())
		s.d.experimentOrder = slices.Delete(s.d.experimentOrder, i, i+1)
	}
	rec := clone(x)
	rec.State = turbulencev1.ExperimentState_EXPERIMENT_STATE_PENDING
	if rec.CreatedAt == nil {
		rec.CreatedAt = timestamppb.New(m.Time)
	}
	if rec.CreatedBy == "" {
		rec.CreatedBy = m.Actor
	}
	s.d.experiments[rec.GetId()] = rec
	s.d.experimentOrder = append(s.d.experimentOrder, rec)
	s.d.appendEvent(m.Time, EventExperimentCreated, "", "", "experiment "+rec.GetId()+" ("+rec.GetName()+") by "+rec.GetCreatedBy())
	s.d.remember(m.RequestID, rec.GetId())
	s.notifyLocked()
	return clone(rec), nil
}

// ApplyUpdateExperiment records an experiment's progress (see
// raftv1.UpdateExperiment). States move forward only and a final state is
// final: an update of an ended experiment is refused, changing nothing,
// so that a stale runner (a deposed leader's) cannot rewrite how an
// experiment ended.
func (s *State) ApplyUpdateExperiment(m Meta, u *raftv1.UpdateExperiment) (*turbulencev1.Experiment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	x, ok := s.d.experiments[u.GetId()]
	if !ok {
		return nil, errorf(ErrNotFound, "experiment %q not found", u.GetId())
	}
	if !ExperimentLive(x.GetState()) {
		return nil, errorf(ErrInvalidTransition, "experiment %s has ended (%s)", x.GetId(), x.GetState())
	}
	if st := u.GetState(); st != turbulencev1.ExperimentState_EXPERIMENT_STATE_UNSPECIFIED && st < x.GetState() {
		return nil, errorf(ErrInvalidTransition, "experiment %s: %s cannot follow %s", x.GetId(), st, x.GetState())
	}
	if len(u.GetTargets()) > 0 && len(x.GetTargets()) > 0 {
		return nil, errorf(ErrInvalidEntry, "experiment %s: targets are chosen once", x.GetId())
	}
	switch st := u.GetState(); {
	case st == turbulencev1.ExperimentState_EXPERIMENT_STATE_UNSPECIFIED || st == x.GetState():
	case st == turbulencev1.ExperimentState_EXPERIMENT_STATE_RUNNING:
		x.State, x.StartedAt = st, timestamppb.New(m.Time)
	default:
		x.State, x.EndedAt = st, timestamppb.New(m.Time)
		x.Verdict, x.Reason = u.GetVerdict(), u.GetReason()
		x.FailedProbe, x.FailedValue = u.GetFailedProbe(), u.GetFailedValue()
		s.d.appendEvent(m.Time, EventExperimentEnded, "", "", "experiment "+x.GetId()+" "+st.String()+": "+u.GetReason())
	}
	if len(u.GetTargets()) > 0 {
		x.Targets = clone(u).GetTargets()
	}
	for _, st := range u.GetSteps() {
		i := slices.IndexFunc(x.Steps, func(o *turbulencev1.ExperimentStep) bool { return o.GetName() == st.GetName() })
		switch {
		case i >= 0:
			x.Steps[i] = clone(st)
		case len(x.Steps) < limits.MaxExperimentSteps:
			x.Steps = append(x.Steps, clone(st))
		}
	}
	for _, ev := range u.GetEvents() {
		if len(x.Events) >= limits.MaxExperimentEvents {
			x.DroppedEvents++
			continue
		}
		x.Events = append(x.Events, clone(ev))
	}
	for _, ser := range u.GetSeries() {
		appendSeries(x, ser)
	}
	s.notifyLocked()
	return clone(x), nil
}

// appendSeries adds a batch of samples to the probe's series, keeping at
// most limits.MaxProbeSamples and counting the rest.
func appendSeries(x *turbulencev1.Experiment, in *turbulencev1.ProbeSeries) {
	i := slices.IndexFunc(x.Series, func(o *turbulencev1.ProbeSeries) bool { return o.GetProbe() == in.GetProbe() })
	if i < 0 {
		if len(x.Series) >= limits.MaxExperimentProbes {
			return
		}
		x.Series = append(x.Series, &turbulencev1.ProbeSeries{Probe: in.GetProbe()})
		i = len(x.Series) - 1
	}
	ser := x.Series[i]
	ser.Dropped += in.GetDropped()
	for _, smp := range in.GetSamples() {
		if len(ser.Samples) >= limits.MaxProbeSamples {
			ser.Dropped++
			continue
		}
		ser.Samples = append(ser.Samples, clone(smp))
	}
}

// Experiment returns a copy of one experiment; without samples, its
// series are left out.
func (s *State) Experiment(id string, withSamples bool) (*turbulencev1.Experiment, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	x, ok := s.d.experiments[id]
	if !ok {
		return nil, false
	}
	if withSamples {
		return clone(x), true
	}
	// Every field but the series, without copying the series first
	// (they are most of the record) nor touching the record (readers
	// share it under the read lock).
	lean := &turbulencev1.Experiment{}
	lm := lean.ProtoReflect()
	x.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Name() != "series" {
			lm.Set(fd, v)
		}
		return true
	})
	return clone(lean), true
}

// LiveExperiments returns the IDs of the PENDING and RUNNING experiments,
// oldest first.
func (s *State) LiveExperiments() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []string
	for _, x := range s.d.experimentOrder {
		if ExperimentLive(x.GetState()) {
			out = append(out, x.GetId())
		}
	}
	return out
}

// ExperimentsPage returns up to n summaries, oldest first, after the
// experiment with ID after ("" for the first page), and whether more
// follow. An after that is not kept any more starts from the beginning.
func (s *State) ExperimentsPage(after string, n int) ([]*turbulencev1.ExperimentSummary, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	start := 0
	if after != "" {
		start = slices.IndexFunc(s.d.experimentOrder, func(x *turbulencev1.Experiment) bool { return x.GetId() == after }) + 1
	}
	var out []*turbulencev1.ExperimentSummary
	for _, x := range s.d.experimentOrder[start:] {
		if len(out) == n {
			return out, true
		}
		started := uint32(0)
		for _, st := range x.GetSteps() {
			if st.GetStartedAt() != nil {
				started++
			}
		}
		out = append(out, &turbulencev1.ExperimentSummary{
			Id: x.GetId(), Name: x.GetName(), State: x.GetState(), Verdict: x.GetVerdict(), Reason: x.GetReason(),
			CreatedBy: x.GetCreatedBy(), CreatedAt: x.GetCreatedAt(), EndedAt: x.GetEndedAt(),
			Steps: uint32(len(x.GetSteps())), StepsStarted: started,
		})
	}
	return out, false
}
