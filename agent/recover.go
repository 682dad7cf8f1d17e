package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/turbulence-sre/turbulence/agent/guardian"
	"github.com/turbulence-sre/turbulence/agent/inject"
	"github.com/turbulence-sre/turbulence/agent/journal"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// JournalFile is the journal's name inside the state directory.
const JournalFile = "journal"

// ReasonRecovered is the end reason of a fault an earlier run of the agent
// held and this one took back at start-up.
const ReasonRecovered = "agent restarted: reverted at start-up"

// ReasonCleanup is the end reason of a fault that `turbulence-agent
// cleanup` (systemd's ExecStopPost) took back after the agent stopped
// without reverting it; the next agent start reports it. It begins like
// ReasonRecovered so that both count as agent_restarted
// (docs/metrics.md).
const ReasonCleanup = "agent restarted: reverted by cleanup after the agent stopped"

// recoverTimeout bounds one fault's recovery.
const recoverTimeout = time.Minute

// Recovery is what start-up recovery (or `turbulence-agent cleanup`) took
// back.
type Recovery struct {
	// Reverted lists the faults the journal named as open, now ended, with
	// the reason and time they really ended (their guardian's, when it
	// took them back first).
	Reverted []*turbulencev1.FaultStatus
	// Swept are marks of this agent's that no journal record named:
	// orphan workers and guardians, fill and scratch directories, ifb
	// devices, nftables tables.
	Swept []string
	// Foreign are marks of the same kinds that another agent made, or
	// that could not be attributed: left alone (invariant 7).
	Foreign []string
}

// recoverHost opens the journal in stateDir and takes back everything an
// earlier run left (invariant 3): every fault the journal lists as open,
// through its kind's Recover, then whatever else carries this owner's
// marks, through each kind's Sweep. It returns the journal, locked and
// compacted, for the agent to keep recording in. A fault it could not take
// back stays open in the journal, so the next start tries again, and is
// returned as an error alongside the journal.
//
// reason and keep are takeBack's: what a fault it takes back ended with,
// and where its outcome is kept before its journal record is closed.
func recoverHost(log *slog.Logger, cfg Config, owner inject.Owner, kinds []inject.Kind, reason string, keep func(*turbulencev1.FaultStatus) error) (*journal.Journal, Recovery, error) {
	var rec Recovery
	if cfg.StateDir == "" {
		return nil, rec, errors.New("a state directory is required: the journal lives there")
	}
	j, open, err := journal.OpenFile(filepath.Join(cfg.StateDir, JournalFile))
	if err != nil {
		return nil, rec, err
	}
	rec, err = takeBack(log, j, open, cfg, owner, kinds, reason, keep)
	if cerr := j.Compact(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("compact journal: %w", cerr))
	}
	return j, rec, err
}

// Backoff of the recovery retries after an incomplete start-up recovery.
const (
	recoveryRetryFirst = 5 * time.Second
	recoveryRetryMax   = 2 * time.Minute
)

// retryRecovery runs takeBack again over what the journal still lists as
// open, with backoff, until nothing is left or ctx ends. Until then the
// Manager refuses new faults (invariant 3: nothing new is applied on a host
// that still carries an earlier run's faults), and the refusal says why.
func (a *Agent) retryRecovery(ctx context.Context, j *journal.Journal) {
	wait := cmp.Or(a.cfg.RecoveryRetry, recoveryRetryFirst)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		// No fault of this run exists yet (they are refused), so every
		// open record and every mark of ours belongs to the earlier run.
		rec, err := takeBack(a.log, j, j.OpenFaults(), a.cfg, a.owner, a.kinds, ReasonRecovered, nil)
		// Lift the refusal first: once the controller hears of the
		// recovered faults, new ones are accepted.
		a.manager.SetUnrecovered(err)
		a.manager.RecordRecovered(rec.Reverted)
		if err == nil {
			a.log.Info("start-up recovery complete: new faults are accepted")
			return
		}
		wait = min(2*wait, recoveryRetryMax)
		a.log.Error("start-up recovery still incomplete; retrying", "err", err, "next_attempt_in", wait)
		timer.Reset(wait)
	}
}

// takeBack reverts the open journal records in open, then sweeps whatever
// else carries this owner's marks. It records each fault it took back in
// j. Every step is idempotent, so it can run again over what is still
// open.
//
// A fault it takes back itself ends with reason. keep, when not nil, is
// given each fault's outcome after the revert and before the journal
// record is closed: cleanup keeps it for the next start to report
// (unreported.go). If keep fails the record stays open, and the next run
// finds the outcome under the fault's lock and tries again.
func takeBack(log *slog.Logger, j *journal.Journal, open []journal.Open, cfg Config, owner inject.Owner, kinds []inject.Kind, reason string, keep func(*turbulencev1.FaultStatus) error) (Recovery, error) {
	var (
		rec  Recovery
		errs []error
	)
	// The earlier run's guardians first: they would otherwise wait for
	// deadlines that recovery makes moot. A guardian killed mid-revert
	// leaves its fault's lock free and the revert is done again below.
	killed, err := guardian.KillOrphans(cfg.ProcRoot, cfg.WorkerBinary, owner.StateDir)
	if err != nil {
		errs = append(errs, fmt.Errorf("stop orphan guardians: %w", err))
	}
	for _, p := range killed {
		rec.Swept = append(rec.Swept, fmt.Sprintf("guardian %d (fault %s)", p.PID, p.Flag("--fault-id")))
	}

	byName := make(map[string]inject.Kind, len(kinds))
	for _, k := range kinds {
		byName[k.Kind()] = k
	}
	var stillOpen []inject.Recorded
	for _, o := range open {
		id := o.Intent.FaultID
		r := recorded(o)
		k, ok := byName[o.Intent.Kind]
		if !ok {
			errs = append(errs, fmt.Errorf("fault %s: unknown fault kind %q in the journal", id, o.Intent.Kind))
			stillOpen = append(stillOpen, r)
			continue
		}
		// Under the fault's lock: if its guardian took it back first, its
		// outcome is the truth, and the host is left alone.
		out, _, err := guardian.Revert(owner.StateDir, id, reason, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), recoverTimeout)
			defer cancel()
			return k.Recover(ctx, r)
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("fault %s: %w", id, err))
			stillOpen = append(stillOpen, r)
			continue
		}
		// The outcome under the fault's lock is when it really ended: a
		// guardian's, when it took the fault back while the agent was gone.
		st := &turbulencev1.FaultStatus{FaultId: id, State: turbulencev1.FaultState_FAULT_STATE_REVERTED, Reason: out.Reason, EndedAt: timestamppb.New(out.At)}
		if !o.Intent.Deadline.IsZero() {
			st.Deadline = timestamppb.New(o.Intent.Deadline)
		}
		if keep != nil {
			if err := keep(st); err != nil {
				errs = append(errs, fmt.Errorf("fault %s: keep its outcome for the controller: %w", id, err))
				stillOpen = append(stillOpen, r)
				continue
			}
		}
		if err := j.Append(journal.Record{Op: journal.OpReverted, FaultID: id, At: time.Now()}); err != nil {
			errs = append(errs, fmt.Errorf("fault %s: %w", id, err))
			stillOpen = append(stillOpen, r)
			continue
		}
		if err := guardian.Forget(owner.StateDir, id); err != nil {
			log.Warn("remove a guardian lock file", "fault_id", id, "err", err)
		}
		log.Warn("took back a fault left by an earlier run", "fault_id", id, "kind", o.Intent.Kind, "reason", out.Reason)
		rec.Reverted = append(rec.Reverted, st)
	}

	// Then every kind's own marks that no open record names.
	for _, k := range kinds {
		s, err := k.Sweep(context.Background(), stillOpen)
		if err != nil {
			errs = append(errs, fmt.Errorf("sweep %s faults: %w", k.Kind(), err))
		}
		for _, m := range s.Removed {
			log.Warn("removed an orphan mark of this agent's", "kind", k.Kind(), "what", m)
		}
		for _, m := range s.Foreign {
			log.Info("left a mark that is not this agent's", "kind", k.Kind(), "what", m)
		}
		rec.Swept = append(rec.Swept, s.Removed...)
		rec.Foreign = append(rec.Foreign, s.Foreign...)
	}
	return rec, errors.Join(errs...)
}

// recorded is what the journal knows of o, for its kind's Recover.
func recorded(o journal.Open) inject.Recorded {
	r := inject.Recorded{FaultID: o.Intent.FaultID}
	if o.Applied {
		r.Undo = o.Undo
	}
	var f turbulencev1.Fault
	if proto.Unmarshal(o.Intent.Fault, &f) == nil {
		r.Fault = &f
	}
	return r
}

// Cleanup takes back everything an agent with cfg's state directory and
// binary left behind, as start-up does, without starting an agent: it is
// `turbulence-agent cleanup`, run by systemd after the agent stops
// (ExecStopPost). The faults it takes back end with ReasonCleanup, and
// their outcomes are kept in UnreportedFile until the next agent start
// reports them to the controller. It is idempotent, touches only the marks of that state
// directory (invariant 7), and refuses with journal.ErrLocked while an
// agent holds the state directory.
func Cleanup(cfg Config) (Recovery, error) {
	cfg, err := withDefaults(cfg)
	if err != nil {
		return Recovery{}, err
	}
	if _, err := os.Stat(cfg.StateDir); err != nil {
		return Recovery{}, fmt.Errorf("state directory: %w", err)
	}
	owner := inject.NewOwner("", cfg.StateDir)
	// Cleanup has no controller to tell, and it closes the journal
	// records, so the next start would find nothing to report: each
	// outcome is kept for it first (unreported.go).
	keep := func(st *turbulencev1.FaultStatus) error {
		dropped, err := keepUnreported(cfg.StateDir, st)
		if dropped > 0 {
			cfg.Logger.Warn("outcomes kept for the controller over the limit: the oldest dropped", "dropped", dropped, "limit", maxUnreported)
		}
		return err
	}
	j, rec, err := recoverHost(cfg.Logger, cfg, owner, kinds(cfg, owner, defaultPolicyForRecovery()), ReasonCleanup, keep)
	if j != nil {
		if cerr := j.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}
	return rec, err
}

// RecoverGuarded is a guardian's Recoverer (agent/guardian): it takes back
// one fault of an agent with this state directory and binary through its
// kind, as start-up recovery would.
func RecoverGuarded(stateDir, binary string) guardian.Recoverer {
	return func(ctx context.Context, o journal.Open) error {
		cfg, err := withDefaults(Config{StateDir: stateDir, WorkerBinary: binary})
		if err != nil {
			return err
		}
		owner := inject.NewOwner("", stateDir)
		for _, k := range kinds(cfg, owner, defaultPolicyForRecovery()) {
			if k.Kind() == o.Intent.Kind {
				return k.Recover(ctx, recorded(o))
			}
		}
		return fmt.Errorf("unknown fault kind %q", o.Intent.Kind)
	}
}
