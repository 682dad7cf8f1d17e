package cli

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	xreport "github.com/turbulence-sre/turbulence/controller/experiment/report"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

const goldenExperimentFile = `name: web-cpu
hypothesis: checkout answers while half the web tier burns CPU
owner: team-checkout
seed: 7
targets:
  web: {selector: role=web, percent: 50}
steps:
  - {name: burn, target: web, duration: 5m, fault: {cpu: {cores: 1, load_percent: 80}}}
probes:
  - name: home
    interval: 100ms
    http: {url: "http://127.0.0.1:8080/healthz", max_latency: 300ms}
steady_state: [home]
abort_when: [home]
`

// goldenExperiment is an experiment aborted by its probe 20 s into its
// step, with the samples around it.
func goldenExperiment() *turbulencev1.Experiment {
	start := ts(-2 * time.Minute)
	step := ts(-2*time.Minute + 100*time.Millisecond)
	fail := goldenNow.Add(-100 * time.Second)
	x := &turbulencev1.Experiment{
		Id: "x-0001", Name: "web-cpu", Hypothesis: "checkout answers while half the web tier burns CPU",
		State: turbulencev1.ExperimentState_EXPERIMENT_STATE_ABORTED, Verdict: turbulencev1.Verdict_VERDICT_FAILED,
		Reason: "probe home failed with value 503: status 503, want 200", FailedProbe: "home", FailedValue: 503,
		CreatedBy: "admin/alice", CreatedAt: start, StartedAt: start, EndedAt: ts(-100*time.Second + 40*time.Millisecond),
		Seed: 7, Spec: []byte(goldenExperimentFile),
		Targets: []*turbulencev1.ExperimentTarget{{Name: "web", AgentIds: []string{"web-1", "web-3"}, Seed: 99}},
		Steps: []*turbulencev1.ExperimentStep{{
			Name: "burn", Target: "web", Kind: "cpu", Offset: durationpb.New(0), Duration: durationpb.New(5 * time.Minute),
			GroupId: "g-0001", StartedAt: step, EndedAt: ts(-100*time.Second + 30*time.Millisecond),
		}},
		Events: []*turbulencev1.ExperimentEvent{
			{Time: start, Type: "started", Message: "checking the error budget and the steady state"},
			{Time: start, Type: "targets.chosen", Message: "target web: 2 agents (4 matched, 4 eligible)"},
			{Time: step, Type: "step.started", Message: "step burn: cpu fault on 2 agents of web for 5m0s (group g-0001)"},
			{Time: ts(-100 * time.Second), Type: "probe.failed", Message: "probe home failed with value 503: status 503, want 200", Probe: "home", Value: 503},
			{Time: ts(-100*time.Second + 40*time.Millisecond), Type: "aborted", Message: "probe home failed with value 503: status 503, want 200", Probe: "home", Value: 503},
		},
	}
	s := &turbulencev1.ProbeSeries{Probe: "home"}
	for i := range 5 {
		at := fail.Add(time.Duration(i-4) * 100 * time.Millisecond)
		smp := &turbulencev1.ProbeSample{TimeUnixNano: at.UnixNano(), Value: 2 + float64(i)/10, Ok: true}
		if i == 4 {
			smp.Ok, smp.Value = false, math.NaN()
		}
		s.Samples = append(s.Samples, smp)
	}
	x.Series = []*turbulencev1.ProbeSeries{s}
	return x
}

func TestGoldenExperiments(t *testing.T) {
	t.Parallel()
	x := goldenExperiment()
	// The show case prints the experiment without its series; made once
	// here, since the cases' subtests run in parallel.
	aborted := goldenExperiment()
	aborted.Series = nil
	checkGoldens(t, []string{"table", "json"}, []goldenCase{
		{"experiment_ls", func(a *app) error {
			return a.printExperiments(&turbulencev1.ListExperimentsResponse{Experiments: []*turbulencev1.ExperimentSummary{
				{Id: "x-0001", Name: "web-cpu", State: x.GetState(), Verdict: x.GetVerdict(), Reason: x.GetReason(), CreatedBy: "admin/alice", CreatedAt: x.GetCreatedAt(), Steps: 1, StepsStarted: 1},
				{Id: "x-0002", Name: "db-memory", State: turbulencev1.ExperimentState_EXPERIMENT_STATE_RUNNING, CreatedBy: "operator/otto", CreatedAt: ts(-time.Minute), Steps: 2, StepsStarted: 1},
			}})
		}},
		{"experiment_show_aborted", func(a *app) error { return a.printExperiment(aborted) }},
	})
}

// TestBuildReport_AbortedByProbe: the report of an aborted experiment
// names the failing sample, keeps a sample that measured nothing as NaN,
// takes probe roles and bounds from the file, and dates the revert from
// the faults.
func TestBuildReport_AbortedByProbe(t *testing.T) {
	t.Parallel()
	x := goldenExperiment()
	g := &turbulencev1.FaultGroup{Id: "g-0001", Spec: &turbulencev1.FaultSpec{Duration: durationpb.New(5 * time.Minute),
		Kind: &turbulencev1.FaultSpec_Cpu{Cpu: &turbulencev1.CPUSpec{Cores: 1, LoadPercent: 80}}},
		Members: []*turbulencev1.GroupMember{{AgentId: "web-1", FaultId: "f-1"}, {AgentId: "web-3", FaultId: "f-3"}}}
	reverted := func(id, agent string, end time.Duration) *turbulencev1.Fault {
		return &turbulencev1.Fault{Id: id, AgentId: agent, State: turbulencev1.FaultState_FAULT_STATE_REVERTED, CreatedAt: x.GetSteps()[0].GetStartedAt(), EndedAt: ts(end)}
	}
	r := buildReport(x, map[string]*turbulencev1.FaultGroup{"g-0001": g}, map[string]*turbulencev1.Fault{
		"f-1": reverted("f-1", "web-1", -100*time.Second+90*time.Millisecond),
		"f-3": reverted("f-3", "web-3", -100*time.Second+120*time.Millisecond),
	})
	if r.State != xreport.StateAborted || r.Before.Outcome != xreport.Pass || r.During.Outcome != xreport.Fail || r.After.Outcome != xreport.NotRun {
		t.Errorf("state %s, verdicts %v %v %v", r.State, r.Before, r.During, r.After)
	}
	if r.Abort == nil || r.Abort.Probe != "home" || !r.Abort.SampleAt.Equal(goldenNow.Add(-100*time.Second)) ||
		!r.Abort.RevertedAt.Equal(goldenNow.Add(-100*time.Second+120*time.Millisecond)) {
		t.Errorf("abort = %+v", r.Abort)
	}
	p := r.Probes[0]
	if !p.SteadyState || !p.Abort || p.Kind != xreport.KindHTTP || p.Max == nil || *p.Max != 300 || !math.IsNaN(float64(p.Samples[4].Value)) {
		t.Errorf("probe = %+v", p)
	}
	if r.Owner != "team-checkout" || r.Targets[0].Selector != "role=web" || len(r.Steps[0].Agents) != 2 || r.Steps[0].Fault == "" {
		t.Errorf("report = %+v", r)
	}
	var text bytes.Buffer
	if err := xreport.Text(&text, r); err != nil || !strings.Contains(text.String(), "ABORTED") {
		t.Errorf("text report: %v\n%s", err, text.String())
	}
}
