package cli

import (
	"context"
	"math"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/turbulence-sre/turbulence/controller/experiment"
	xreport "github.com/turbulence-sre/turbulence/controller/experiment/report"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

func (a *app) experimentReportCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "report ID",
		Short: "Print an experiment's report: -o text (default), json or html",
		Long: `report reads an experiment, every probe sample it recorded, and each of its
fault groups and member faults, and prints the report
(controller/experiment/report): a text summary by default, the report's
JSON with -o json, or a self-contained HTML page with SVG charts with
-o html (redirect it to a file and open it in a browser; it fetches
nothing). A running experiment gives a report of what is recorded so far.`,
		Annotations: map[string]string{annotationReportFormats: "true"},
		Args:        exactArgs("ID"),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			return a.withClient(func(c *client) error {
				r, err := fetchReport(cmd.Context(), c, args[0])
				if err != nil {
					return err
				}
				switch a.output {
				case "json":
					return xreport.JSON(a.stdout, r)
				case "html":
					return xreport.HTML(a.stdout, r)
				}
				return xreport.Text(a.stdout, r)
			})
		}),
	}
}

// fetchReport reads what a report needs through the API.
func fetchReport(ctx context.Context, c *client, id string) (*xreport.Report, error) {
	var x *turbulencev1.Experiment
	if err := c.call(ctx, func(ctx context.Context) (err error) {
		x, err = c.api.GetExperiment(ctx, &turbulencev1.GetExperimentRequest{Id: id, WithSamples: true})
		return err
	}); err != nil {
		return nil, err
	}
	groups := map[string]*turbulencev1.FaultGroup{}
	faults := map[string]*turbulencev1.Fault{}
	for _, st := range x.GetSteps() {
		if st.GetGroupId() == "" {
			continue
		}
		var g *turbulencev1.FaultGroup
		if err := c.call(ctx, func(ctx context.Context) (err error) {
			g, err = c.api.GetFaultGroup(ctx, &turbulencev1.GetFaultGroupRequest{Id: st.GetGroupId()})
			return err
		}); err != nil {
			return nil, err
		}
		groups[g.GetId()] = g
		for _, m := range g.GetMembers() {
			if m.GetFaultId() == "" {
				continue
			}
			var f *turbulencev1.Fault
			if err := c.call(ctx, func(ctx context.Context) (err error) {
				f, err = c.api.GetFault(ctx, &turbulencev1.GetFaultRequest{Id: m.GetFaultId()})
				return err
			}); err != nil {
				return nil, err
			}
			faults[f.GetId()] = f
		}
	}
	r := buildReport(x, groups, faults)
	r.Hosts = fetchHosts(ctx, c, x)
	return r, nil
}

// fetchHosts reads the host metrics of every chosen agent since the
// experiment started. They are the leader's soft state, kept for a short
// window (docs/hostmetrics.md): a report made long after the run, or
// after a leader change, has none or part of them, and says so by their
// absence rather than failing.
func fetchHosts(ctx context.Context, c *client, x *turbulencev1.Experiment) []xreport.HostSeries {
	var out []xreport.HostSeries
	for _, t := range x.GetTargets() {
		for _, id := range t.GetAgentIds() {
			var resp *turbulencev1.GetAgentMetricsResponse
			if err := c.call(ctx, func(ctx context.Context) (err error) {
				resp, err = c.api.GetAgentMetrics(ctx, &turbulencev1.GetAgentMetricsRequest{AgentId: id, Since: x.GetStartedAt()})
				return err
			}); err != nil || len(resp.GetSamples()) == 0 {
				continue
			}
			hs := xreport.HostSeries{Agent: id, Target: t.GetName(), Metrics: map[string][]xreport.Point{}}
			end := x.GetEndedAt()
			for _, smp := range resp.GetSamples() {
				at := smp.GetSampledAt().AsTime()
				if end != nil && at.After(end.AsTime()) {
					break
				}
				add := func(name string, v *float64) {
					if v != nil {
						hs.Metrics[name] = append(hs.Metrics[name], xreport.Point{At: at.UTC(), Value: xreport.Float(*v)})
					}
				}
				add("cpu_percent", smp.CpuPercent)
				add("memory_used_percent", smp.MemoryUsedPercent)
				add("load1", smp.Load1)
				add("disk_used_percent", smp.DiskUsedPercent)
				add("disk_io_bytes_per_second", smp.DiskIoBytesPerSecond)
				add("network_bytes_per_second", smp.NetworkBytesPerSecond)
			}
			out = append(out, hs)
		}
	}
	return out
}

// buildReport makes the report of an experiment from its record, its
// groups and their member faults.
func buildReport(x *turbulencev1.Experiment, groups map[string]*turbulencev1.FaultGroup, faults map[string]*turbulencev1.Fault) *xreport.Report {
	spec, _ := experiment.Parse(x.GetSpec()) // recorded after validation; nil only for a damaged record
	r := &xreport.Report{
		Version: xreport.FormatVersion, ID: x.GetId(), Name: x.GetName(), Hypothesis: x.GetHypothesis(),
		StartedBy: x.GetCreatedBy(), Seed: x.GetSeed(),
		DroppedEvents: int(x.GetDroppedEvents()),
	}
	if spec != nil {
		r.Owner = spec.Owner
	}
	if t := x.GetStartedAt(); t != nil {
		r.StartedAt = t.AsTime().UTC()
	} else {
		r.StartedAt = x.GetCreatedAt().AsTime().UTC()
	}
	if t := x.GetEndedAt(); t != nil {
		r.EndedAt = t.AsTime().UTC()
	}
	r.State, r.Before, r.During, r.After = verdicts(x)
	for _, t := range x.GetTargets() {
		rt := xreport.Target{Name: t.GetName(), Agents: t.GetAgentIds()}
		if spec != nil {
			rt.Selector = spec.Targets[t.GetName()].Selector
		}
		r.Targets = append(r.Targets, rt)
	}
	var lastRevert time.Time
	allReverted := true
	for _, st := range x.GetSteps() {
		rs := xreport.Step{
			Name: st.GetName(), Target: st.GetTarget(), Kind: st.GetKind(),
			PlannedStart: st.GetOffset().AsDuration(), PlannedDuration: st.GetDuration().AsDuration(), GroupID: st.GetGroupId(),
		}
		if t := st.GetStartedAt(); t != nil {
			rs.Start = t.AsTime().UTC()
		}
		if t := st.GetEndedAt(); t != nil {
			rs.End = t.AsTime().UTC()
		}
		if g := groups[st.GetGroupId()]; g != nil {
			rs.Fault = specSummary(g.GetSpec())
			for _, m := range g.GetMembers() {
				f := faults[m.GetFaultId()]
				if f == nil {
					continue
				}
				sa := xreport.StepAgent{Agent: f.GetAgentId(), FaultID: f.GetId(), State: faultStateWord(f.GetState()), Start: f.GetCreatedAt().AsTime().UTC()}
				if e := f.GetEndedAt(); e != nil {
					sa.End = e.AsTime().UTC()
					lastRevert = maxTime(lastRevert, sa.End)
				}
				if f.GetState() != turbulencev1.FaultState_FAULT_STATE_REVERTED {
					allReverted = false
				}
				if f.GetState() == turbulencev1.FaultState_FAULT_STATE_FAILED {
					sa.Err = f.GetReason()
				}
				rs.Agents = append(rs.Agents, sa)
			}
		}
		r.Steps = append(r.Steps, rs)
	}
	for _, s := range x.GetSeries() {
		ps := xreport.ProbeSeries{Name: s.GetProbe(), Dropped: int(s.GetDropped())}
		describeProbe(&ps, spec)
		for _, smp := range s.GetSamples() {
			rs := xreport.Sample{At: time.Unix(0, smp.GetTimeUnixNano()).UTC(), Value: xreport.Float(smp.GetValue()), Pass: smp.GetOk()}
			if !rs.Pass {
				rs.Err = "failed"
			}
			ps.Samples = append(ps.Samples, rs)
		}
		r.Probes = append(r.Probes, ps)
	}
	for _, ev := range x.GetEvents() {
		r.Events = append(r.Events, xreport.Event{At: ev.GetTime().AsTime().UTC(), Type: eventClass(ev.GetType()), Text: ev.GetMessage()})
	}
	if x.GetState() == turbulencev1.ExperimentState_EXPERIMENT_STATE_ABORTED {
		ab := &xreport.Abort{Reason: x.GetReason(), Probe: x.GetFailedProbe(), Value: xreport.Float(x.GetFailedValue())}
		if ab.Probe != "" {
			// The failing sample is the probe's first failure after the
			// first step started.
			ab.SampleAt = failingSampleAt(x, ab.Probe)
		}
		if allReverted && !lastRevert.IsZero() {
			ab.RevertedAt = lastRevert
		}
		r.Abort = ab
	}
	return r
}

// verdicts maps an experiment's end to the report's state and verdicts.
func verdicts(x *turbulencev1.Experiment) (xreport.State, xreport.Verdict, xreport.Verdict, xreport.Verdict) {
	pass := xreport.Verdict{Outcome: xreport.Pass}
	notRun := xreport.Verdict{Outcome: xreport.NotRun}
	fail := xreport.Verdict{Outcome: xreport.Fail, Reason: x.GetReason()}
	switch x.GetState() {
	case turbulencev1.ExperimentState_EXPERIMENT_STATE_REFUSED:
		return xreport.StateRefused, fail, notRun, notRun
	case turbulencev1.ExperimentState_EXPERIMENT_STATE_ABORTED:
		return xreport.StateAborted, pass, fail, notRun
	case turbulencev1.ExperimentState_EXPERIMENT_STATE_COMPLETED:
		if x.GetVerdict() == turbulencev1.Verdict_VERDICT_PASSED {
			return xreport.StateCompleted, pass, pass, xreport.Verdict{Outcome: xreport.Pass, Reason: x.GetReason()}
		}
		return xreport.StateCompleted, pass, pass, fail
	}
	return xreport.StateRunning, pass, notRun, notRun
}

// describeProbe fills a series' kind, subject, unit, bounds and roles
// from the experiment file.
func describeProbe(ps *xreport.ProbeSeries, spec *experiment.Spec) {
	if ps.Name == budgetProbe || ps.Name == burnRateProbe {
		ps.Kind = xreport.KindErrorBudget
		return
	}
	if spec == nil {
		return
	}
	i := slices.IndexFunc(spec.Probes, func(p experiment.Probe) bool { return p.Name == ps.Name })
	if i < 0 {
		return
	}
	p := spec.Probes[i]
	ps.SteadyState = slices.Contains(spec.SteadyState, p.Name)
	ps.Abort = slices.Contains(spec.AbortWhen, p.Name)
	switch {
	case p.HTTP != nil:
		ps.Kind, ps.Subject, ps.Unit = xreport.KindHTTP, p.HTTP.URL, "ms"
		if d := p.HTTP.MaxLatency.D(); d > 0 {
			m := float64(d) / float64(time.Millisecond)
			ps.Max = &m
		}
	case p.Prometheus != nil:
		ps.Kind, ps.Subject, ps.Min, ps.Max = xreport.KindPrometheus, p.Prometheus.Query, p.Prometheus.Min, p.Prometheus.Max
	case p.Host != nil:
		ps.Kind, ps.Subject, ps.Min, ps.Max = xreport.KindHost, "target "+p.Host.Target+": "+p.Host.Metric, p.Host.Min, p.Host.Max
	}
}

// failingSampleAt is the time of the probe's first failing sample after
// the first step started.
func failingSampleAt(x *turbulencev1.Experiment, probe string) time.Time {
	from := int64(math.MaxInt64)
	for _, st := range x.GetSteps() {
		if t := st.GetStartedAt(); t != nil {
			from = min(from, t.AsTime().UnixNano())
		}
	}
	for _, s := range x.GetSeries() {
		if s.GetProbe() != probe {
			continue
		}
		for _, smp := range s.GetSamples() {
			if !smp.GetOk() && smp.GetTimeUnixNano() >= from {
				return time.Unix(0, smp.GetTimeUnixNano()).UTC()
			}
		}
	}
	return time.Time{}
}

// Names the runner records (controller/experiment/runner: BudgetProbe,
// probe.BurnRateName, and the Event… types, also listed on
// ExperimentEvent.type); turbctl does not import the runner, which is
// server code (test/deps_test.go).
const (
	budgetProbe   = "error_budget"
	burnRateProbe = "error_budget.burn_rate"
)

// eventClass is the report's display class of a runner event.
func eventClass(typ string) string {
	switch typ {
	case "aborted", "refused":
		return "abort"
	case "probe.failed":
		return "failed"
	}
	return typ
}

func faultStateWord(st turbulencev1.FaultState) string {
	return stateName(st)
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
