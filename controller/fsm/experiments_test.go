package fsm

import (
	"errors"
	"testing"

	"github.com/turbulence-sre/turbulence/controller/state"
	"github.com/turbulence-sre/turbulence/internal/limits"
	raftv1 "github.com/turbulence-sre/turbulence/proto/turbulence/raft/v1"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

func experimentEntry(req, id string) *raftv1.LogEntry {
	return &raftv1.LogEntry{RequestId: req, Cmd: &raftv1.LogEntry_CreateExperiment{CreateExperiment: &raftv1.CreateExperiment{
		Experiment: &turbulencev1.Experiment{Id: id, Name: "web-latency", Seed: 3, Spec: []byte("name: web-latency\n")},
	}}}
}

func progressEntry(u *raftv1.UpdateExperiment) *raftv1.LogEntry {
	return &raftv1.LogEntry{Cmd: &raftv1.LogEntry_UpdateExperiment{UpdateExperiment: u}}
}

const (
	xRunning   = turbulencev1.ExperimentState_EXPERIMENT_STATE_RUNNING
	xPending   = turbulencev1.ExperimentState_EXPERIMENT_STATE_PENDING
	xAborted   = turbulencev1.ExperimentState_EXPERIMENT_STATE_ABORTED
	xCompleted = turbulencev1.ExperimentState_EXPERIMENT_STATE_COMPLETED
)

func TestFSM_ExperimentLifecycle(t *testing.T) {
	t.Parallel()
	f := New(state.New(), nil)
	resp := applyAll(t, f,
		experimentEntry("r1", "x1"),
		// A retry of the same request is the same experiment.
		experimentEntry("r1", "x9"),
		progressEntry(&raftv1.UpdateExperiment{Id: "x1", State: xRunning,
			Targets: []*turbulencev1.ExperimentTarget{{Name: "web", AgentIds: []string{"a1", "a2"}}}}),
		// Targets are chosen once.
		progressEntry(&raftv1.UpdateExperiment{Id: "x1", Targets: []*turbulencev1.ExperimentTarget{{Name: "web", AgentIds: []string{"a3"}}}}),
		// Back to PENDING is refused.
		progressEntry(&raftv1.UpdateExperiment{Id: "x1", State: xPending}),
		progressEntry(&raftv1.UpdateExperiment{Id: "x1", Steps: []*turbulencev1.ExperimentStep{{Name: "s1", GroupId: "g1"}},
			Events: []*turbulencev1.ExperimentEvent{{Type: "step.started"}}}),
		progressEntry(&raftv1.UpdateExperiment{Id: "x1", State: xAborted, Reason: "probe http failed", FailedProbe: "http", FailedValue: 503}),
		// A stale runner cannot rewrite how it ended.
		progressEntry(&raftv1.UpdateExperiment{Id: "x1", State: xCompleted, Verdict: turbulencev1.Verdict_VERDICT_PASSED}),
		progressEntry(&raftv1.UpdateExperiment{Id: "nope", State: xRunning}),
		progressEntry(&raftv1.UpdateExperiment{Id: "x1", Events: []*turbulencev1.ExperimentEvent{{Type: "late"}}}),
	)
	if x, ok := resp[1].(*turbulencev1.Experiment); !ok || x.GetId() != "x1" {
		t.Errorf("retry = %v, want experiment x1", resp[1])
	}
	for i, want := range map[int]error{3: state.ErrInvalidEntry, 4: state.ErrInvalidTransition, 7: state.ErrInvalidTransition, 8: state.ErrNotFound, 9: state.ErrInvalidTransition} {
		if err, _ := resp[i].(error); !errors.Is(err, want) {
			t.Errorf("entry %d = %v, want %v", i, resp[i], want)
		}
	}
	x, ok := f.State().Experiment("x1", true)
	if !ok {
		t.Fatal("x1 not found")
	}
	if x.GetState() != xAborted || x.GetFailedValue() != 503 || x.GetStartedAt() == nil || x.GetEndedAt() == nil ||
		len(x.GetTargets()) != 1 || len(x.GetTargets()[0].GetAgentIds()) != 2 || len(x.GetSteps()) != 1 || len(x.GetEvents()) != 1 {
		t.Errorf("x1 = %v", x)
	}
	if live := f.State().LiveExperiments(); len(live) != 0 {
		t.Errorf("live = %v, want none", live)
	}
}

func TestFSM_ExperimentSamplesBounded(t *testing.T) {
	t.Parallel()
	f := New(state.New(), nil)
	batch := make([]*turbulencev1.ProbeSample, 1000)
	for i := range batch {
		batch[i] = &turbulencev1.ProbeSample{TimeUnixNano: int64(i), Ok: true}
	}
	entries := []*raftv1.LogEntry{experimentEntry("r1", "x1")}
	for range 3 {
		entries = append(entries, progressEntry(&raftv1.UpdateExperiment{Id: "x1", Series: []*turbulencev1.ProbeSeries{{Probe: "p", Samples: batch}}}))
	}
	applyAll(t, f, entries...)
	x, _ := f.State().Experiment("x1", true)
	s := x.GetSeries()[0]
	if len(s.GetSamples()) != limits.MaxProbeSamples || int(s.GetDropped()) != 3000-limits.MaxProbeSamples {
		t.Errorf("samples = %d dropped %d, want %d and %d", len(s.GetSamples()), s.GetDropped(), limits.MaxProbeSamples, 3000-limits.MaxProbeSamples)
	}
	if lean, _ := f.State().Experiment("x1", false); len(lean.GetSeries()) != 0 {
		t.Error("Experiment without samples returned series")
	}
}

func TestFSM_ExperimentsKeepTheNewest(t *testing.T) {
	t.Parallel()
	f := New(state.New(), nil)
	var entries []*raftv1.LogEntry
	for i := range limits.MaxExperiments + 1 {
		id := "x" + string(rune('A'+i/26)) + string(rune('a'+i%26))
		entries = append(entries, experimentEntry("", id),
			progressEntry(&raftv1.UpdateExperiment{Id: id, State: xAborted}))
	}
	applyAll(t, f, entries...)
	if _, ok := f.State().Experiment("xAa", false); ok {
		t.Error("the oldest ended experiment is still kept")
	}
	page, more := f.State().ExperimentsPage("", limits.MaxExperiments+5)
	if len(page) != limits.MaxExperiments || more {
		t.Errorf("kept %d (more %v), want %d", len(page), more, limits.MaxExperiments)
	}
}
