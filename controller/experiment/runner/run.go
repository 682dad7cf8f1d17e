package runner

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/turbulence-sre/turbulence/controller/experiment"
	"github.com/turbulence-sre/turbulence/controller/state"
	"github.com/turbulence-sre/turbulence/internal/faultspec"
	"github.com/turbulence-sre/turbulence/internal/limits"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	raftv1 "github.com/turbulence-sre/turbulence/proto/turbulence/raft/v1"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Event types of an experiment's timeline (ExperimentEvent.type).
const (
	EventStarted        = "started"
	EventRefused        = "refused"
	EventTargetsChosen  = "targets.chosen"
	EventStepStarted    = "step.started"
	EventStepEnded      = "step.ended"
	EventProbeFailed    = "probe.failed"
	EventProbeRecovered = "probe.passed"
	EventRecovery       = "recovery"
	EventAborted        = "aborted"
	EventCompleted      = "completed"
)

// BudgetProbe names the error-budget check in reasons and events.
const BudgetProbe = "error_budget"

// phase is where a run is on its timeline.
type phase int

const (
	phaseBefore   phase = iota // checks before the start
	phaseDuring                // from the first step's start to the last one's end
	phaseRecovery              // after the last fault, until the steady state holds
)

// abortRequest asks a run to abort; by is the person who asked (nil for
// the runner's own reasons).
type abortRequest struct {
	reason string
	by     *tlsutil.Identity
}

// probeSample is a sample and the probe it belongs to.
type probeSample struct {
	probe string
	s     Sample
}

// run is one experiment being run. Its fields are owned by loop's
// goroutine, except abort and done.
type run struct {
	r    *Runner
	id   string
	x    *turbulencev1.Experiment
	spec *experiment.Spec

	abort     chan abortRequest
	abortOnce sync.Once
	done      chan struct{}

	probes   map[string]Prober
	abortOn  map[string]bool
	steady   []string
	windows  []experiment.Window
	steps    []*turbulencev1.ExperimentStep
	targets  map[string][]string
	groupIDs []string

	// Buffered for the next flush.
	events  []*turbulencev1.ExperimentEvent
	samples map[string][]*turbulencev1.ProbeSample
	dirty   map[string]bool // steps changed since the last flush
	// lastPass is each probe's latest result, for progress and recovery.
	lastPass map[string]bool
}

func newRun(r *Runner, x *turbulencev1.Experiment, spec *experiment.Spec) *run {
	return &run{
		r: r, id: x.GetId(), x: x, spec: spec,
		abort:    make(chan abortRequest, 1),
		done:     make(chan struct{}),
		samples:  map[string][]*turbulencev1.ProbeSample{},
		dirty:    map[string]bool{},
		lastPass: map[string]bool{},
		abortOn:  map[string]bool{},
	}
}

// requestAbort asks the run to abort; only the first request counts.
func (ru *run) requestAbort(a abortRequest) {
	ru.abortOnce.Do(func() { ru.abort <- a })
}

// outcome is how a run ended.
type outcome struct {
	state   turbulencev1.ExperimentState
	verdict turbulencev1.Verdict
	reason  string
	probe   string
	value   float64
	by      *tlsutil.Identity
}

// loop runs the experiment to its end, or until ctx (the leadership
// term) is done, in which case it writes nothing more: the next leader
// applies the failover rule.
func (ru *run) loop(ctx context.Context) {
	defer close(ru.done)
	log := ru.r.logger.With("experiment_id", ru.id)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var samplers sync.WaitGroup
	defer samplers.Wait()
	defer cancel() // stops the samplers before waiting for them

	out, err := ru.execute(ctx, &samplers)
	if ctx.Err() != nil {
		log.Warn("leadership lost while running an experiment; the next leader aborts it")
		return
	}
	if err != nil {
		out = outcome{state: turbulencev1.ExperimentState_EXPERIMENT_STATE_ABORTED, verdict: turbulencev1.Verdict_VERDICT_FAILED, reason: err.Error()}
	}
	if out.state == turbulencev1.ExperimentState_EXPERIMENT_STATE_ABORTED {
		if err := ru.revertAll(ctx, out.reason); err != nil {
			// Not recorded as ended while a group may still be live:
			// the next leader's term aborts it again.
			log.Error("could not revert an aborted experiment's groups", "error", err)
			return
		}
	}
	ru.event(eventType(out.state), out.reason, out.probe, out.value)
	u := ru.batch()
	u.State, u.Verdict, u.Reason, u.FailedProbe, u.FailedValue = out.state, out.verdict, limits.Truncate(out.reason, limits.MaxReason), out.probe, finite(out.value)
	if err := ru.r.propose(ctx, u, out.by); err != nil {
		log.Error("could not record the end of an experiment", "error", err)
		return
	}
	log.Info("experiment ended", "state", out.state, "verdict", out.verdict, "reason", out.reason)
}

func eventType(st turbulencev1.ExperimentState) string {
	switch st {
	case turbulencev1.ExperimentState_EXPERIMENT_STATE_REFUSED:
		return EventRefused
	case turbulencev1.ExperimentState_EXPERIMENT_STATE_ABORTED:
		return EventAborted
	}
	return EventCompleted
}

func refused(reason, probe string, value float64) outcome {
	return outcome{state: turbulencev1.ExperimentState_EXPERIMENT_STATE_REFUSED, verdict: turbulencev1.Verdict_VERDICT_FAILED, reason: reason, probe: probe, value: value}
}

func aborted(reason, probe string, value float64) outcome {
	return outcome{state: turbulencev1.ExperimentState_EXPERIMENT_STATE_ABORTED, verdict: turbulencev1.Verdict_VERDICT_FAILED, reason: reason, probe: probe, value: value}
}

// execute runs the checks, the timeline and the recovery, and returns
// how the experiment ended. An error is a failure of the controller
// (a raft write, a group the runner could not apply), which aborts.
func (ru *run) execute(ctx context.Context, samplers *sync.WaitGroup) (outcome, error) {
	ru.plan()
	ru.event(EventStarted, "checking the error budget and the steady state", "", 0)
	u := ru.batch()
	u.State = turbulencev1.ExperimentState_EXPERIMENT_STATE_RUNNING
	if err := ru.r.propose(ctx, u, nil); err != nil {
		return outcome{}, err
	}
	if o, ok := ru.checkBudget(ctx); !ok {
		return o, nil
	}
	if o, ok := ru.chooseTargets(ctx); !ok {
		return o, nil
	}
	if o, ok := ru.buildProbes(); !ok {
		return o, nil
	}
	if o, ok := ru.checkSteadyState(ctx); !ok {
		return o, nil
	}
	if err := ru.flush(ctx); err != nil {
		return outcome{}, err
	}
	return ru.timeline(ctx, samplers)
}

// plan records the steps as planned, from the file's timeline.
func (ru *run) plan() {
	ru.windows = ru.spec.Timeline()
	for i, w := range ru.windows {
		kind := ""
		if fs, err := ru.spec.Steps[i].FaultSpec(); err == nil {
			kind = faultspec.Kind(fs)
		}
		st := &turbulencev1.ExperimentStep{
			Name: w.Step, Target: w.Target, Kind: kind,
			Offset: durationpb.New(w.Start), Duration: durationpb.New(w.End - w.Start),
		}
		ru.steps = append(ru.steps, st)
		ru.dirty[st.GetName()] = true
	}
}

// checkBudget refuses the start when the error budget is below its floor.
func (ru *run) checkBudget(ctx context.Context) (outcome, bool) {
	eb := ru.spec.ErrorBudget
	if eb == nil {
		return outcome{}, true
	}
	v, err := ru.r.cfg.Probes.Budget(ctx, eb)
	ru.addSample(BudgetProbe, Sample{At: time.Now(), Value: v, Pass: err == nil})
	if err != nil {
		return refused("error budget: "+err.Error(), BudgetProbe, v), false
	}
	ru.event("budget.checked", fmt.Sprintf("error budget remaining %s, floor %s", fmtValue(v), fmtValue(eb.MinRemaining)), BudgetProbe, v)
	return outcome{}, true
}

// chooseTargets chooses each target's agents and records them.
func (ru *run) chooseTargets(ctx context.Context) (outcome, bool) {
	recs, err := ru.choose(ctx)
	if err != nil {
		return refused(err.Error(), "", 0), false
	}
	u := ru.batch()
	u.Targets = recs
	if err := ru.r.propose(ctx, u, nil); err != nil {
		return refused("recording the targets: "+err.Error(), "", 0), false
	}
	return outcome{}, true
}

// choose chooses each target's agents once, with the group code (a dry
// run of ApplyFaultGroup), each with a seed derived from the
// experiment's.
func (ru *run) choose(ctx context.Context) ([]*turbulencev1.ExperimentTarget, error) {
	names := make([]string, 0, len(ru.spec.Targets))
	for n := range ru.spec.Targets {
		names = append(names, n)
	}
	sort.Strings(names)
	ru.targets = map[string][]string{}
	var recs []*turbulencev1.ExperimentTarget
	for _, name := range names {
		t := ru.spec.Targets[name]
		fs, err := ru.targetFault(name)
		if err != nil {
			return nil, fmt.Errorf("targets.%s: %w", name, err)
		}
		seed := experiment.TargetSeed(ru.x.GetSeed(), name)
		g, err := ru.r.cfg.Groups.ApplyGroupFor(ctx, actor(ru.id), &turbulencev1.ApplyFaultGroupRequest{
			Spec: fs, Selector: t.Selector, AgentIds: t.Agents, Count: t.Count, Percent: t.Percent,
			Seed: &seed, Min: t.Min, DryRun: true,
		})
		if err != nil {
			return nil, fmt.Errorf("targets.%s: %w", name, plainErr{err})
		}
		var ids []string
		for _, m := range g.GetMembers() {
			if state.Chosen(m) {
				ids = append(ids, m.GetAgentId())
			}
		}
		if len(ids) > limits.MaxExperimentTargetAgents {
			return nil, fmt.Errorf("targets.%s: %d agents chosen, at most %d per target", name, len(ids), limits.MaxExperimentTargetAgents)
		}
		ru.targets[name] = ids
		recs = append(recs, &turbulencev1.ExperimentTarget{Name: name, AgentIds: ids, Seed: seed})
		ru.event(EventTargetsChosen, fmt.Sprintf("target %s: %d agents (%d matched, %d eligible)", name, len(ids), g.GetMatched(), g.GetEligible()), "", 0)
	}
	return recs, nil
}

// targetFault is the fault the target is chosen for: that of its first
// step, so that only agents able to take it are eligible. A target only
// host probes watch is chosen for its first step's fault of any target.
func (ru *run) targetFault(name string) (*turbulencev1.FaultSpec, error) {
	i := slices.IndexFunc(ru.spec.Steps, func(s experiment.Step) bool { return s.Target == name })
	if i < 0 {
		i = 0
	}
	if len(ru.spec.Steps) == 0 {
		return nil, errors.New("the experiment has no step")
	}
	return ru.spec.Steps[i].FaultSpec()
}

// buildProbes builds every probe's prober (host probes over their
// target's chosen agents) and the burn-rate guard.
func (ru *run) buildProbes() (outcome, bool) {
	ru.probes = map[string]Prober{}
	for _, p := range ru.spec.Probes {
		var agents []string
		if p.Host != nil {
			agents = ru.targets[p.Host.Target]
		}
		pr, err := ru.r.cfg.Probes.New(p, agents)
		if err != nil {
			return refused(fmt.Sprintf("probes.%s: %v", p.Name, err), p.Name, 0), false
		}
		ru.probes[p.Name] = pr
	}
	for _, n := range ru.spec.AbortWhen {
		ru.abortOn[n] = true
	}
	if eb := ru.spec.ErrorBudget; eb != nil && eb.BurnRateQuery != "" {
		pr, err := ru.r.cfg.Probes.BurnRate(eb)
		if err != nil {
			return refused("error_budget: "+err.Error(), BudgetProbe, 0), false
		}
		ru.probes[pr.Name()] = pr
		ru.abortOn[pr.Name()] = true
	}
	ru.steady = ru.spec.SteadyState
	return outcome{}, true
}

// checkSteadyState samples every steady-state probe once: all must pass.
func (ru *run) checkSteadyState(ctx context.Context) (outcome, bool) {
	for _, name := range ru.steady {
		pr, ok := ru.probes[name]
		if !ok {
			return refused("steady_state: no probe named "+name, name, 0), false
		}
		s := pr.Sample(ctx)
		ru.addSample(name, s)
		if !s.Pass {
			return refused(fmt.Sprintf("steady state does not hold: probe %s failed with value %s: %s", name, fmtValue(s.Value), s.Detail), name, s.Value), false
		}
	}
	ru.event("steady_state.held", "every steady-state probe passed", "", 0)
	return outcome{}, true
}

// timeline runs the steps and the recovery. Every probe is sampled all
// the way through; abort_when probes abort from the first step's start
// to the last one's end; after that, the steady-state probes must all
// pass within the recovery time.
func (ru *run) timeline(ctx context.Context, samplers *sync.WaitGroup) (outcome, error) {
	samples := make(chan probeSample, 64)
	for name, pr := range ru.probes {
		samplers.Go(func() { sample(ctx, name, pr, samples) })
	}
	start := time.Now()
	type mark struct {
		at    time.Duration
		step  int
		start bool
	}
	var marks []mark
	var faultEnd time.Duration
	for i, w := range ru.windows {
		marks = append(marks, mark{w.Start, i, true}, mark{w.End, i, false})
		faultEnd = max(faultEnd, w.End)
	}
	// Ends before starts at the same instant: a sequence never overlaps.
	slices.SortStableFunc(marks, func(a, b mark) int {
		if a.at != b.at {
			return cmp.Compare(a.at, b.at)
		}
		if a.start == b.start {
			return 0
		}
		if a.start {
			return 1
		}
		return -1
	})
	ph := phaseBefore
	var recoveryEnd time.Time
	// recovered is, in recovery, whether each steady-state probe passed
	// on its latest sample.
	recovered := map[string]bool{}
	flush := time.NewTicker(ru.r.cfg.FlushInterval)
	defer flush.Stop()
	timer := time.NewTimer(0)
	defer timer.Stop()
	next := 0
	for {
		// An abort asked for while the checks ran (or while a step was
		// being applied) wins over the next step.
		select {
		case a := <-ru.abort:
			o := aborted(a.reason, "", 0)
			o.by = a.by
			return o, nil
		default:
		}
		// Due marks next: a step starts or ends at its time, whatever
		// else is waiting.
		for next < len(marks) && time.Since(start) >= marks[next].at {
			m := marks[next]
			next++
			if m.start {
				if ph == phaseBefore {
					ph = phaseDuring
				}
				if err := ru.startStep(ctx, m.step); err != nil {
					return aborted(fmt.Sprintf("step %s could not be applied: %v", ru.steps[m.step].GetName(), plainErr{err}), "", 0), nil
				}
			} else {
				ru.endStep(m.step)
			}
			if err := ru.flush(ctx); err != nil {
				return outcome{}, err
			}
		}
		if next == len(marks) && ph != phaseRecovery {
			ph = phaseRecovery
			recoveryEnd = time.Now().Add(ru.spec.Recovery.D())
			ru.event(EventRecovery, "every fault window has ended; waiting for the steady state within "+ru.spec.Recovery.D().String(), "", 0)
			if len(ru.steady) == 0 {
				return outcome{state: turbulencev1.ExperimentState_EXPERIMENT_STATE_COMPLETED, verdict: turbulencev1.Verdict_VERDICT_PASSED, reason: "every step ran; no steady state to check"}, nil
			}
		}
		var wait time.Duration
		switch {
		case next < len(marks):
			wait = marks[next].at - time.Since(start)
		default:
			wait = time.Until(recoveryEnd)
		}
		timer.Reset(max(wait, 0))
		select {
		case <-ctx.Done():
			return outcome{}, ctx.Err()
		case a := <-ru.abort:
			o := aborted(a.reason, "", 0)
			o.by = a.by
			return o, nil
		case ps := <-samples:
			ru.addSample(ps.probe, ps.s)
			switch {
			case ph == phaseDuring && ru.abortOn[ps.probe] && !ps.s.Pass:
				return aborted(fmt.Sprintf("probe %s failed with value %s: %s", ps.probe, fmtValue(ps.s.Value), ps.s.Detail), ps.probe, ps.s.Value), nil
			case ph == phaseRecovery && slices.Contains(ru.steady, ps.probe):
				recovered[ps.probe] = ps.s.Pass
				if allTrue(recovered, ru.steady) {
					return outcome{state: turbulencev1.ExperimentState_EXPERIMENT_STATE_COMPLETED, verdict: turbulencev1.Verdict_VERDICT_PASSED,
						reason: fmt.Sprintf("the steady state held again %s after the last fault", time.Since(start.Add(faultEnd)).Round(time.Millisecond))}, nil
				}
			}
		case <-timer.C:
			if ph == phaseRecovery && !time.Now().Before(recoveryEnd) {
				var failing []string
				for _, n := range ru.steady {
					if !recovered[n] {
						failing = append(failing, n)
					}
				}
				return outcome{state: turbulencev1.ExperimentState_EXPERIMENT_STATE_COMPLETED, verdict: turbulencev1.Verdict_VERDICT_FAILED,
					reason: fmt.Sprintf("the steady state did not hold within the recovery time of %s: %v still failing", ru.spec.Recovery.D(), failing)}, nil
			}
		case <-flush.C:
			if o, failed := ru.checkSteps(); failed {
				return o, nil
			}
			if err := ru.flush(ctx); err != nil {
				return outcome{}, err
			}
		}
	}
}

// checkSteps aborts when every fault of a running step has FAILED (the
// agents refused it, by their policy or for a missing feature): the
// experiment would go on hurting nothing while its verdict claimed the
// fault ran.
func (ru *run) checkSteps() (outcome, bool) {
	for _, st := range ru.steps {
		if st.GetGroupId() == "" || st.GetEndedAt() != nil {
			continue
		}
		g, ok := ru.r.cfg.State.FaultGroup(st.GetGroupId())
		if !ok {
			continue
		}
		chosen, failed, reason := 0, 0, ""
		for _, m := range g.GetMembers() {
			if !state.Chosen(m) {
				continue
			}
			chosen++
			if m.GetState() == turbulencev1.FaultState_FAULT_STATE_FAILED {
				failed++
				reason = m.GetReason()
			}
		}
		if chosen > 0 && failed == chosen {
			return aborted(fmt.Sprintf("step %s: every fault of group %s failed (%s)", st.GetName(), g.GetId(), reason), "", 0), true
		}
	}
	return outcome{}, false
}

func allTrue(m map[string]bool, keys []string) bool {
	for _, k := range keys {
		if !m[k] {
			return false
		}
	}
	return true
}

// sample samples one probe every interval until ctx is done.
func sample(ctx context.Context, name string, pr Prober, out chan<- probeSample) {
	t := time.NewTicker(pr.Interval())
	defer t.Stop()
	for {
		s := pr.Sample(ctx)
		select {
		case out <- probeSample{probe: name, s: s}:
		case <-ctx.Done():
			return
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// startStep applies a step's fault group to its target's agents.
func (ru *run) startStep(ctx context.Context, i int) error {
	st := ru.steps[i]
	fs, err := ru.spec.Steps[i].FaultSpec()
	if err != nil {
		return err
	}
	agents := ru.targets[st.GetTarget()]
	seed := experiment.TargetSeed(ru.x.GetSeed(), st.GetTarget())
	g, err := ru.r.cfg.Groups.ApplyGroupFor(ctx, actor(ru.id), &turbulencev1.ApplyFaultGroupRequest{
		RequestId: stepRequestID(ru.id, st.GetName()),
		Spec:      fs, AgentIds: agents, Seed: &seed, Min: 1,
	})
	if err != nil {
		return err
	}
	ru.groupIDs = append(ru.groupIDs, g.GetId())
	st.GroupId, st.StartedAt = g.GetId(), timestamppb.Now()
	ru.dirty[st.GetName()] = true
	ru.event(EventStepStarted, fmt.Sprintf("step %s: %s fault on %d agents of %s for %s (group %s)",
		st.GetName(), st.GetKind(), g.GetChosen(), st.GetTarget(), st.GetDuration().AsDuration(), g.GetId()), "", 0)
	return nil
}

// endStep records the end of a step's fault window. The agents end the
// fault themselves at its deadline (invariant 1).
func (ru *run) endStep(i int) {
	st := ru.steps[i]
	if st.GetStartedAt() == nil {
		return
	}
	st.EndedAt = timestamppb.Now()
	ru.dirty[st.GetName()] = true
	ru.event(EventStepEnded, "step "+st.GetName()+": fault window ended", "", 0)
}

// revertAll reverts every group the run applied, at once, and records
// the step windows as ended.
func (ru *run) revertAll(ctx context.Context, reason string) error {
	errs := make([]error, len(ru.groupIDs))
	var wg sync.WaitGroup
	for i, gid := range ru.groupIDs {
		wg.Go(func() {
			_, errs[i] = ru.r.cfg.Groups.RevertGroupFor(ctx, actor(ru.id), "", gid, "experiment "+ru.id+" aborted: "+reason)
		})
	}
	wg.Wait()
	for _, st := range ru.steps {
		if st.GetStartedAt() != nil && st.GetEndedAt() == nil {
			st.EndedAt = timestamppb.Now()
			ru.dirty[st.GetName()] = true
		}
	}
	return errors.Join(errs...)
}

// addSample buffers a sample, and an event when a probe changes from
// passing to failing or back.
func (ru *run) addSample(probe string, s Sample) {
	ru.samples[probe] = append(ru.samples[probe], &turbulencev1.ProbeSample{TimeUnixNano: s.At.UnixNano(), Value: s.Value, Ok: s.Pass})
	prev, seen := ru.lastPass[probe]
	ru.lastPass[probe] = s.Pass
	switch {
	case !s.Pass && (!seen || prev):
		ru.event(EventProbeFailed, fmt.Sprintf("probe %s failed with value %s: %s", probe, fmtValue(s.Value), s.Detail), probe, s.Value)
	case s.Pass && seen && !prev:
		ru.event(EventProbeRecovered, fmt.Sprintf("probe %s passes again with value %s", probe, fmtValue(s.Value)), probe, s.Value)
	}
}

func (ru *run) event(typ, msg, probe string, value float64) {
	ru.events = append(ru.events, &turbulencev1.ExperimentEvent{
		Time: timestamppb.Now(), Type: typ, Message: limits.Truncate(msg, limits.MaxReason), Probe: probe, Value: finite(value),
	})
}

// batch takes what is buffered as an update (and empties the buffers).
func (ru *run) batch() *raftv1.UpdateExperiment {
	u := &raftv1.UpdateExperiment{Id: ru.id, Events: ru.events}
	ru.events = nil
	for _, st := range ru.steps {
		if ru.dirty[st.GetName()] {
			u.Steps = append(u.Steps, st)
		}
	}
	clear(ru.dirty)
	names := make([]string, 0, len(ru.samples))
	for n := range ru.samples {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		u.Series = append(u.Series, &turbulencev1.ProbeSeries{Probe: n, Samples: ru.samples[n]})
	}
	clear(ru.samples)
	return u
}

// flush proposes what is buffered, if anything.
func (ru *run) flush(ctx context.Context) error {
	u := ru.batch()
	if len(u.GetEvents()) == 0 && len(u.GetSteps()) == 0 && len(u.GetSeries()) == 0 {
		return nil
	}
	return ru.r.propose(ctx, u, nil)
}

// finite makes NaN and infinities 0 in events and the experiment's
// failed value, which people read as numbers; a sample keeps its NaN (the
// report shows "nothing measured").
func finite(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}

func fmtValue(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }

// plainErr words an error of the group API for the experiment's record
// and the people who read it: a gRPC status's message alone, without the
// "rpc error: code = … desc =" its Error adds. It unwraps to the error.
type plainErr struct{ err error }

func (e plainErr) Error() string {
	if st, ok := status.FromError(e.err); ok {
		return st.Message()
	}
	return e.err.Error()
}

func (e plainErr) Unwrap() error { return e.err }
