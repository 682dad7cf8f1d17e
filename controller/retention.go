package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/turbulence-sre/turbulence/controller/state"
	"github.com/turbulence-sre/turbulence/internal/limits"
	raftv1 "github.com/turbulence-sre/turbulence/proto/turbulence/raft/v1"
)

// Retention is how much history the cluster keeps (docs/operations.md,
// Retention). Without it, every fault ever applied and every agent ever
// seen stays in memory and in every snapshot on every node.
type Retention struct {
	// EndedFaultAge: an ended fault (and a group whose faults are all
	// gone) is removed this long after it ended.
	EndedFaultAge time.Duration
	// MaxEndedFaults: at most this many ended faults are kept, the
	// oldest ends removed first, whatever their age.
	MaxEndedFaults int
	// DepartedAgentAge: an agent not heard from for this long (and that
	// holds no fault that is not ended) is removed. It registers again
	// when it comes back.
	DepartedAgentAge time.Duration
	// Interval is how often the leader looks for what to remove.
	Interval time.Duration
}

// Retention defaults and limits.
const (
	DefaultEndedFaultAge    = 24 * time.Hour
	DefaultMaxEndedFaults   = 50_000
	DefaultDepartedAgentAge = 7 * 24 * time.Hour
	DefaultPruneInterval    = time.Minute

	MinEndedFaultAge    = time.Minute
	MaxRetentionAge     = 366 * 24 * time.Hour
	MaxMaxEndedFaults   = 10_000_000
	MinDepartedAgentAge = time.Hour
	MinPruneInterval    = time.Second
	MaxPruneInterval    = time.Hour
)

func (r Retention) withDefaults() Retention {
	if r.EndedFaultAge == 0 {
		r.EndedFaultAge = DefaultEndedFaultAge
	}
	if r.MaxEndedFaults == 0 {
		r.MaxEndedFaults = DefaultMaxEndedFaults
	}
	if r.DepartedAgentAge == 0 {
		r.DepartedAgentAge = DefaultDepartedAgentAge
	}
	if r.Interval == 0 {
		r.Interval = DefaultPruneInterval
	}
	return r
}

// validate names the flag and the limit of each value out of bounds.
func (r Retention) validate() []error {
	var errs []error
	if a := r.EndedFaultAge; a < MinEndedFaultAge || a > MaxRetentionAge {
		errs = append(errs, fmt.Errorf("retain-ended-faults: %s is not in [%s, %s] (0 means the default, %s)", a, MinEndedFaultAge, MaxRetentionAge, DefaultEndedFaultAge))
	}
	if n := r.MaxEndedFaults; n < 1 || n > MaxMaxEndedFaults {
		errs = append(errs, fmt.Errorf("max-ended-faults: %d is not in [1, %d] (0 means the default, %d)", n, MaxMaxEndedFaults, DefaultMaxEndedFaults))
	}
	if a := r.DepartedAgentAge; a < MinDepartedAgentAge || a > MaxRetentionAge {
		errs = append(errs, fmt.Errorf("retain-departed-agents: %s is not in [%s, %s] (0 means the default, %s)", a, MinDepartedAgentAge, MaxRetentionAge, DefaultDepartedAgentAge))
	}
	if i := r.Interval; i < MinPruneInterval || i > MaxPruneInterval {
		errs = append(errs, fmt.Errorf("prune-interval: %s is not in [%s, %s] (0 means the default, %s)", i, MinPruneInterval, MaxPruneInterval, DefaultPruneInterval))
	}
	return errs
}

// pruneLoop proposes a Prune entry every Interval while this node leads,
// when the state holds something the policy no longer keeps. What is
// removed is decided again by every replica from the entry alone
// (state.ApplyPrune); the leader's own look first only spares an idle
// cluster empty entries. Each prune is audited (actor "controller"), so
// that the audit log says when and under which policy history was
// removed; the audit log itself is never pruned by it.
func (c *Controller) pruneLoop(ctx context.Context) {
	r := c.cfg.Retention
	leaderSince := time.Now()
	t := time.NewTicker(r.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if err := c.pruneOnce(ctx, r, leaderSince, now); err != nil && ctx.Err() == nil {
				c.logger.Warn("prune failed; trying again at the next interval", "error", err)
			}
		}
	}
}

func (c *Controller) pruneOnce(ctx context.Context, r Retention, leaderSince, now time.Time) error {
	p := state.Prune{
		Retention: state.Retention{EndedFaultAge: r.EndedFaultAge, MaxEndedFaults: r.MaxEndedFaults, DepartedAgentAge: r.DepartedAgentAge},
	}
	p.DepartedAgentIDs = c.hub.Departed(c.state.AgentIDs(), leaderSince, now, r.DepartedAgentAge)
	defer c.hub.DepartedDone()
	if len(p.DepartedAgentIDs) > limits.MaxPruneAgents {
		// One entry stays within its bound; the rest go at the next
		// interval.
		p.DepartedAgentIDs = p.DepartedAgentIDs[:limits.MaxPruneAgents]
	}
	plan := c.state.PlanPrune(now, p)
	if plan.Zero() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := c.node.Apply(ctx, &raftv1.LogEntry{
		Actor: "controller",
		Audit: &raftv1.Audit{Action: "state.prune", Summary: fmt.Sprintf(
			"retention (ended faults %s, at most %d; departed agents %s) removes about %s", r.EndedFaultAge, r.MaxEndedFaults, r.DepartedAgentAge, plan)},
		Cmd: &raftv1.LogEntry_Prune{Prune: &raftv1.Prune{
			EndedFaultAge:    durationpb.New(p.EndedFaultAge),
			MaxEndedFaults:   uint32(min(p.MaxEndedFaults, MaxMaxEndedFaults)),
			DepartedAgentIds: p.DepartedAgentIDs,
			DepartedAgentAge: durationpb.New(p.DepartedAgentAge),
		}},
	})
	if err != nil {
		return err
	}
	res, ok := resp.(state.PruneResult)
	if !ok {
		return errors.New("prune entry answered with " + fmt.Sprintf("%T", resp))
	}
	// The hub forgets only the agents the state removed: one kept for a
	// live fault keeps its last reports (the measured effect that an
	// UNCONFIRMED fault shows).
	var gone []string
	for _, id := range p.DepartedAgentIDs {
		if _, ok := c.state.Agent(id); !ok {
			gone = append(gone, id)
		}
	}
	c.hub.Forget(gone)
	c.logger.Info("retention pruned the state", "removed", res.String())
	return nil
}
