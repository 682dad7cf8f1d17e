package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/turbulence-sre/turbulence/controller/experiment"
	"github.com/turbulence-sre/turbulence/controller/state"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	raftv1 "github.com/turbulence-sre/turbulence/proto/turbulence/raft/v1"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Reasons an experiment ends with that the runner words itself.
const (
	ReasonLeaderChanged = "leader changed: probe history incomplete"
	ReasonFleetHalted   = "fleet halted"
)

// ErrNotLeader is returned by Launch and Abort on a node whose runner is
// not running (it does not lead, or has not passed its barrier yet).
var ErrNotLeader = errors.New("the experiment runner runs on the leader only")

// ErrNotLive is returned by Abort for an experiment that has ended.
var ErrNotLive = errors.New("experiment has ended")

// Proposer proposes raft entries; the raft node implements it.
type Proposer interface {
	Apply(ctx context.Context, e *raftv1.LogEntry) (any, error)
}

// Groups applies and reverts fault groups the way the control API does;
// controlapi.Server implements it.
type Groups interface {
	ApplyGroupFor(ctx context.Context, actor tlsutil.Identity, req *turbulencev1.ApplyFaultGroupRequest) (*turbulencev1.FaultGroup, error)
	RevertGroupFor(ctx context.Context, actor tlsutil.Identity, requestID, groupID, reason string) (*turbulencev1.FaultGroup, error)
}

// Sample is one measurement of a probe (the probe package's, as the
// runner needs it).
type Sample struct {
	At    time.Time
	Value float64
	Pass  bool
	// Detail says why a sample failed, or what a passing one saw.
	Detail string
}

// Prober measures one probe.
type Prober interface {
	Name() string
	Interval() time.Duration
	Sample(ctx context.Context) Sample
}

// Probes builds an experiment's probers; controller.go adapts
// controller/experiment/probe to it.
type Probes interface {
	// New builds the prober of p; agentIDs are the agents of a host
	// probe's target.
	New(p experiment.Probe, agentIDs []string) (Prober, error)
	// Budget returns the error budget that remains, and an error when it
	// is below the floor or cannot be known.
	Budget(ctx context.Context, b *experiment.ErrorBudget) (float64, error)
	// BurnRate builds the prober of the burn-rate guard.
	BurnRate(b *experiment.ErrorBudget) (Prober, error)
}

// Config configures a Runner.
type Config struct {
	Raft   Proposer
	State  *state.State
	Groups Groups
	Probes Probes
	// FlushInterval is how often samples and events are proposed;
	// default 1s.
	FlushInterval time.Duration
	Logger        *slog.Logger
}

// Runner runs the experiments of one controller node while it leads.
type Runner struct {
	cfg    Config
	logger *slog.Logger

	mu sync.Mutex
	// term is the context of the current leadership term, nil when Run
	// does not run.
	term context.Context
	runs map[string]*run
	wg   sync.WaitGroup
}

// New returns a Runner; call Run while the node leads.
func New(cfg Config) *Runner {
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Runner{cfg: cfg, logger: cfg.Logger.With("component", "experiments"), runs: map[string]*run{}}
}

// Run is the runner of one leadership term: it aborts every experiment
// an earlier term left live (the failover rule, in the package doc),
// aborts every running experiment when the fleet is halted, and returns
// when ctx is done and every run it started has stopped.
func (r *Runner) Run(ctx context.Context) error {
	r.mu.Lock()
	r.term = ctx
	var orphans []string
	for _, id := range r.cfg.State.LiveExperiments() {
		if r.runs[id] == nil {
			orphans = append(orphans, id)
		}
	}
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.term = nil
		r.mu.Unlock()
		r.wg.Wait()
	}()
	// An orphan whose abort failed (a group revert or the record could
	// not be written) is tried again, until the term ends.
	retry := time.NewTicker(orphanRetry)
	defer retry.Stop()
	for {
		orphans = r.abortOrphans(ctx, orphans)
		changed := r.cfg.State.Changed()
		if h := r.cfg.State.Halt(); h.GetHalted() {
			r.haltAll()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-retry.C:
		}
	}
}

// orphanRetry is how often a term tries again to abort an orphan whose
// abort failed.
const orphanRetry = 5 * time.Second

// abortOrphans applies the failover rule to ids and returns those whose
// abort failed.
func (r *Runner) abortOrphans(ctx context.Context, ids []string) []string {
	var failed []string
	for _, id := range ids {
		r.logger.Warn("aborting an experiment left running by an earlier leader", "experiment_id", id)
		if err := r.abortOrphan(ctx, id, ReasonLeaderChanged, nil); err != nil {
			r.logger.Error("could not abort an orphaned experiment; trying again", "experiment_id", id, "error", err)
			failed = append(failed, id)
		}
	}
	return failed
}

// haltAll asks every running experiment to end ABORTED "fleet halted".
// The halt has already reverted their faults (invariant 5); the runs
// revert their groups all the same, which changes nothing more.
func (r *Runner) haltAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ru := range r.runs {
		ru.requestAbort(abortRequest{reason: ReasonFleetHalted})
	}
}

// Plan returns x (not recorded) with its steps as planned and its
// targets chosen as a start would choose them now, touching nothing: a
// dry run of StartExperiment.
func (r *Runner) Plan(ctx context.Context, x *turbulencev1.Experiment) (*turbulencev1.Experiment, error) {
	spec, err := experiment.Parse(x.GetSpec())
	if err != nil {
		return nil, err
	}
	ru := newRun(r, x, spec)
	ru.plan()
	targets, err := ru.choose(ctx)
	if err != nil {
		return nil, err
	}
	out := proto.CloneOf(x)
	out.Targets, out.Steps = targets, ru.steps
	return out, nil
}

// Launch starts running a PENDING experiment recorded in the state.
func (r *Runner) Launch(id string) error {
	x, ok := r.cfg.State.Experiment(id, false)
	if !ok {
		return fmt.Errorf("experiment %q: %w", id, state.ErrNotFound)
	}
	spec, err := experiment.Parse(x.GetSpec())
	if err != nil {
		return fmt.Errorf("experiment %s: %w", id, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.term == nil {
		return ErrNotLeader
	}
	if r.runs[id] != nil {
		return nil
	}
	ru := newRun(r, x, spec)
	r.runs[id] = ru
	term := r.term
	r.wg.Go(func() {
		defer func() {
			r.mu.Lock()
			delete(r.runs, id)
			r.mu.Unlock()
		}()
		ru.loop(term)
	})
	return nil
}

// Abort ends a live experiment ABORTED with reason, reverting every group
// it applied, and returns once it has ended (or ctx is done). by is the
// person who asked, recorded in the audit log.
func (r *Runner) Abort(ctx context.Context, id, reason string, by tlsutil.Identity) error {
	r.mu.Lock()
	term, ru := r.term, r.runs[id]
	r.mu.Unlock()
	if term == nil {
		return ErrNotLeader
	}
	if ru != nil {
		ru.requestAbort(abortRequest{reason: reason, by: &by})
		select {
		case <-ru.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	x, ok := r.cfg.State.Experiment(id, false)
	switch {
	case !ok:
		return fmt.Errorf("experiment %q: %w", id, state.ErrNotFound)
	case !state.ExperimentLive(x.GetState()):
		return fmt.Errorf("experiment %s is %s: %w", id, x.GetState(), ErrNotLive)
	}
	return r.abortOrphan(ctx, id, reason, &by)
}

// abortOrphan aborts a live experiment that no run of this term owns:
// it reverts every group its steps may have applied and records the end.
func (r *Runner) abortOrphan(ctx context.Context, id, reason string, by *tlsutil.Identity) error {
	x, ok := r.cfg.State.Experiment(id, false)
	if !ok || !state.ExperimentLive(x.GetState()) {
		return nil
	}
	groups := map[string]bool{}
	for _, st := range x.GetSteps() {
		if st.GetGroupId() != "" {
			groups[st.GetGroupId()] = true
		}
		// The step's group may be committed without the step's record.
		if gid, ok := r.cfg.State.AppliedResult(stepRequestID(id, st.GetName())); ok {
			groups[gid] = true
		}
	}
	var errs []error
	for gid := range groups {
		if _, err := r.cfg.Groups.RevertGroupFor(ctx, actor(id), "", gid, "experiment "+id+" aborted: "+reason); err != nil {
			errs = append(errs, fmt.Errorf("revert group %s: %w", gid, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		// Not recorded as ended while a group may still be live: the
		// next term tries again.
		return err
	}
	u := &raftv1.UpdateExperiment{
		Id: id, State: turbulencev1.ExperimentState_EXPERIMENT_STATE_ABORTED,
		Verdict: turbulencev1.Verdict_VERDICT_FAILED, Reason: reason,
		Events: []*turbulencev1.ExperimentEvent{{Time: timestamppb.Now(), Type: EventAborted, Message: reason}},
	}
	return r.propose(ctx, u, by)
}

// propose records u; with by, as that person's call in the audit log.
func (r *Runner) propose(ctx context.Context, u *raftv1.UpdateExperiment, by *tlsutil.Identity) error {
	e := &raftv1.LogEntry{
		ProposedAt: timestamppb.Now(),
		Actor:      actor(u.GetId()).String(),
		Cmd:        &raftv1.LogEntry_UpdateExperiment{UpdateExperiment: u},
	}
	if by != nil {
		e.Actor = by.String()
		e.RequestId = "abort-" + u.GetId()
		e.Audit = &raftv1.Audit{Action: "experiment.abort", Summary: "abort experiment " + u.GetId() + ": " + u.GetReason()}
	}
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	resp, err := r.cfg.Raft.Apply(ctx, e)
	if err != nil {
		return err
	}
	if err, ok := resp.(error); ok {
		return err
	}
	return nil
}

// writeTimeout bounds one raft write of the runner.
const writeTimeout = 10 * time.Second

// actor is the identity an experiment's writes and groups carry.
func actor(id string) tlsutil.Identity { return tlsutil.Identity{Role: "experiment", Name: id} }

// stepRequestID is the request ID of a step's group: derived, so that a
// retry (and a new leader's search) finds the group already made.
func stepRequestID(experimentID, step string) string { return experimentID + "/" + step }

// errNoHostMetrics refuses a host probe on a controller that keeps no
// host metrics.
var errNoHostMetrics = errors.New("host probes need the agents' host metrics, which this controller does not keep")
