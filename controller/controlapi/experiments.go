package controlapi

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/turbulence-sre/turbulence/controller/experiment"
	"github.com/turbulence-sre/turbulence/controller/state"
	"github.com/turbulence-sre/turbulence/internal/faultspec"
	"github.com/turbulence-sre/turbulence/internal/limits"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	raftv1 "github.com/turbulence-sre/turbulence/proto/turbulence/raft/v1"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// ExperimentRunner is the leader's experiment runner
// (controller/experiment/runner).
type ExperimentRunner interface {
	// Plan returns x with its steps planned and its targets chosen,
	// recording and applying nothing.
	Plan(ctx context.Context, x *turbulencev1.Experiment) (*turbulencev1.Experiment, error)
	// Launch runs a recorded PENDING experiment.
	Launch(id string) error
	// Abort ends a live experiment ABORTED, reverting its groups, and
	// returns once it has ended.
	Abort(ctx context.Context, id, reason string, by tlsutil.Identity) error
}

// tokenExperiments prefixes the page tokens of ListExperiments.
const tokenExperiments = "x"

// abortTimeout bounds how long AbortExperiment waits for the experiment
// to end when the caller gave no deadline.
const abortTimeout = 30 * time.Second

// StartExperiment validates an experiment file, records the experiment
// (PENDING) in one raft entry and hands it to the runner; with dry_run it
// plans the experiment and records nothing.
func (s *Server) StartExperiment(ctx context.Context, req *turbulencev1.StartExperimentRequest) (*turbulencev1.Experiment, error) {
	caller, err := authorize(ctx, permWrite)
	if err != nil {
		return nil, toStatus(err)
	}
	x, err := s.startExperiment(ctx, caller, req)
	if err != nil {
		s.logger.Info("experiment refused", "by", caller.String(), "error", err)
		return nil, toStatus(err)
	}
	return x, nil
}

func (s *Server) startExperiment(ctx context.Context, caller tlsutil.Identity, req *turbulencev1.StartExperimentRequest) (*turbulencev1.Experiment, error) {
	if s.cfg.Experiments == nil {
		return nil, errorf(ErrNotLeader, "this controller runs no experiments")
	}
	if !req.GetDryRun() {
		if id, ok := s.cfg.State.AppliedResult(req.GetRequestId()); ok && req.GetRequestId() != "" {
			if x, ok := s.cfg.State.Experiment(id, false); ok {
				return x, nil
			}
		}
	}
	// Invariant 6: the whole file is checked before anything is proposed.
	spec, err := s.checkExperiment(req.GetSpec())
	if err != nil {
		return nil, err
	}
	if h := s.cfg.State.Halt(); h.GetHalted() {
		return nil, haltedError(h)
	}
	seed := spec.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	now := time.Now()
	x := &turbulencev1.Experiment{
		Name: spec.Name, Hypothesis: spec.Hypothesis, Seed: seed, Spec: req.GetSpec(),
		CreatedBy: caller.String(), CreatedAt: timestamppb.New(now),
	}
	if req.GetDryRun() {
		return s.cfg.Experiments.Plan(ctx, x)
	}
	x.Id = newID("x-")
	created, err := proposeCreate[*turbulencev1.Experiment](ctx, s, req.GetRequestId(), caller.String(), now, &raftv1.LogEntry{
		Cmd: &raftv1.LogEntry_CreateExperiment{CreateExperiment: &raftv1.CreateExperiment{Experiment: x}},
	})
	if err != nil {
		return nil, err
	}
	if created.GetId() == x.GetId() {
		if err := s.cfg.Experiments.Launch(created.GetId()); err != nil {
			// Recorded but not started here: the next leader's runner
			// aborts it (the failover rule), so it is never left live.
			s.logger.Warn("experiment recorded but not launched", "experiment_id", created.GetId(), "error", err)
		}
		s.logger.Info("experiment started", "experiment_id", created.GetId(), "name", created.GetName(), "seed", seed, "by", caller.String())
	}
	return created, nil
}

// checkExperiment parses and validates an experiment file, and checks
// each step's fault as ApplyFault would, returning every problem at once
// as InvalidArgument naming each field.
func (s *Server) checkExperiment(data []byte) (*experiment.Spec, error) {
	if len(data) == 0 {
		return nil, invalidField("spec", "is empty: send the experiment file")
	}
	spec, err := experiment.Parse(data)
	if err == nil {
		err = spec.Validate()
	}
	var problems []faultspec.FieldError
	var xerr *experiment.Error
	switch {
	case errors.As(err, &xerr):
		problems = append(problems, xerr.Problems...)
	case err != nil:
		return nil, invalidField("spec", err.Error())
	}
	if err == nil {
		for i := range spec.Steps {
			fs, ferr := spec.Steps[i].FaultSpec()
			if ferr != nil {
				problems = append(problems, faultspec.FieldError{Field: fmt.Sprintf("steps[%d].fault", i), Reason: ferr.Error()})
				continue
			}
			_, more, ferr := s.checkSpec(fs)
			if ferr != nil {
				return nil, ferr
			}
			for _, p := range more {
				problems = append(problems, faultspec.FieldError{Field: fmt.Sprintf("steps[%d].fault.%s", i, p.Field), Reason: p.Reason})
			}
		}
	}
	if len(problems) > 0 {
		return nil, invalidExperiment(problems)
	}
	return spec, nil
}

// invalidExperiment is InvalidArgument listing every problem of a file.
func invalidExperiment(problems []faultspec.FieldError) error {
	return invalidProblems("invalid experiment", problems)
}

// GetExperiment returns one experiment; its samples only when asked.
func (s *Server) GetExperiment(ctx context.Context, req *turbulencev1.GetExperimentRequest) (*turbulencev1.Experiment, error) {
	if _, err := authorize(ctx, permRead); err != nil {
		return nil, toStatus(err)
	}
	x, ok := s.cfg.State.Experiment(req.GetId(), req.GetWithSamples())
	if !ok {
		return nil, toStatus(errorf(ErrNotFound, "id: experiment %q not found", req.GetId()))
	}
	return x, nil
}

// ListExperiments returns a page of experiment summaries, oldest first.
func (s *Server) ListExperiments(ctx context.Context, req *turbulencev1.ListExperimentsRequest) (*turbulencev1.ListExperimentsResponse, error) {
	if _, err := authorize(ctx, permRead); err != nil {
		return nil, toStatus(err)
	}
	n, err := PageSize("page_size", req.GetPageSize(), limits.DefaultPageExperiments, limits.MaxPageExperiments)
	if err != nil {
		return nil, err
	}
	after, err := DecodeToken(tokenExperiments, req.GetPageToken())
	if err != nil {
		return nil, err
	}
	page, more := s.cfg.State.ExperimentsPage(after, n)
	resp := &turbulencev1.ListExperimentsResponse{Experiments: page}
	if more && len(page) > 0 {
		resp.NextPageToken = EncodeToken(tokenExperiments, page[len(page)-1].GetId())
	}
	return resp, nil
}

// AbortExperiment ends a live experiment ABORTED, reverting every group
// it applied, and returns it once ended.
func (s *Server) AbortExperiment(ctx context.Context, req *turbulencev1.AbortExperimentRequest) (*turbulencev1.Experiment, error) {
	caller, err := authorize(ctx, permWrite)
	if err != nil {
		return nil, toStatus(err)
	}
	x, ok := s.cfg.State.Experiment(req.GetId(), false)
	if !ok {
		return nil, toStatus(errorf(ErrNotFound, "id: experiment %q not found", req.GetId()))
	}
	if !state.ExperimentLive(x.GetState()) {
		return nil, toStatus(errorf(state.ErrInvalidTransition, "id: experiment %s has ended (%s); nothing to abort", x.GetId(), x.GetState()))
	}
	if s.cfg.Experiments == nil {
		return nil, toStatus(errorf(ErrNotLeader, "this controller runs no experiments"))
	}
	reason := req.GetReason()
	if reason == "" {
		reason = "aborted by " + caller.String()
	} else {
		reason = "aborted by " + caller.String() + ": " + reason
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, abortTimeout)
		defer cancel()
	}
	if err := s.cfg.Experiments.Abort(ctx, x.GetId(), limits.Truncate(reason, limits.MaxReason), caller); err != nil {
		return nil, toStatus(err)
	}
	x, _ = s.cfg.State.Experiment(req.GetId(), false)
	s.logger.Info("experiment aborted", "experiment_id", x.GetId(), "by", caller.String())
	return x, nil
}
