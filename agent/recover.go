package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/turbulence-sre/turbulence/agent/inject/network"
	"github.com/turbulence-sre/turbulence/agent/inject/partition"
	"github.com/turbulence-sre/turbulence/agent/journal"
	"github.com/turbulence-sre/turbulence/agent/sweep"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// JournalFile is the journal's name inside the state directory.
const JournalFile = "journal"

// ReasonRecovered is the end reason of a fault an earlier run of the agent
// held and this one took back at start-up.
const ReasonRecovered = "agent restarted: reverted at start-up"

// Recovery is what start-up recovery (or `turbulence-agent cleanup`) took
// back.
type Recovery struct {
	// Reverted lists the faults the journal named as open, now ended.
	Reverted []*turbulencev1.FaultStatus
	// SweptWorkers are orphan workers the journal did not name.
	SweptWorkers []sweep.Worker
	// SweptDirs are marked directories of disk faults (fill and scratch
	// files) the journal did not name.
	SweptDirs []string
	// SweptNetwork are the agent's qdiscs and nftables tables the journal
	// did not name.
	SweptNetwork []string
}

// recoverHost opens the journal in stateDir and takes back everything an
// earlier run left (invariant 3): first every fault the journal lists as
// open, by its recorded worker, then anything else that carries the
// agent's marks. It returns the journal, locked and compacted, for the
// agent to keep recording in. A fault it could not take back stays open in
// the journal, so the next start tries again, and is returned as an error
// alongside the journal.
func recoverHost(log *slog.Logger, stateDir, procRoot, binary string) (*journal.Journal, Recovery, error) {
	var rec Recovery
	if stateDir == "" {
		return nil, rec, errors.New("a state directory is required: the journal lives there")
	}
	j, open, err := journal.OpenFile(filepath.Join(stateDir, JournalFile))
	if err != nil {
		return nil, rec, err
	}
	rec, err = takeBack(log, j, open, procRoot, MarkOwner(stateDir), binary)
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
		// open record and every mark belongs to the earlier run.
		rec, err := takeBack(a.log, j, j.OpenFaults(), a.cfg.ProcRoot, MarkOwner(a.cfg.StateDir), a.cfg.WorkerBinary)
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
// else carries the agent's marks: workers, disk fault directories, qdiscs
// and nftables tables. It records each fault it took back in j. Every step
// is idempotent, so it can run again over what is still open.
func takeBack(log *slog.Logger, j *journal.Journal, open []journal.Open, procRoot, owner, binary string) (Recovery, error) {
	var (
		rec  Recovery
		errs []error
	)
	for _, o := range open {
		id := o.Intent.FaultID
		if err := undoRecorded(procRoot, owner, o.Undo); err != nil {
			errs = append(errs, fmt.Errorf("fault %s: %w", id, err))
			continue
		}
		// An intent without an applied record may have a worker the
		// journal never heard of: the sweep below finds it by its marks.
		if err := j.Append(journal.Record{Op: journal.OpReverted, FaultID: id, At: time.Now()}); err != nil {
			errs = append(errs, fmt.Errorf("fault %s: %w", id, err))
			continue
		}
		log.Warn("reverted a fault left by an earlier run", "fault_id", id, "kind", o.Intent.Kind, "worker_pid", o.Undo.WorkerPID)
		st := &turbulencev1.FaultStatus{FaultId: id, State: turbulencev1.FaultState_FAULT_STATE_REVERTED, Reason: ReasonRecovered}
		if !o.Intent.Deadline.IsZero() {
			st.Deadline = timestamppb.New(o.Intent.Deadline)
		}
		rec.Reverted = append(rec.Reverted, st)
	}

	swept, err := sweep.Workers(procRoot, binary, os.Getpid())
	if err != nil {
		errs = append(errs, fmt.Errorf("sweep workers: %w", err))
	}
	for _, w := range swept {
		log.Warn("killed an orphan worker", "pid", w.PID, "fault_id", w.FaultID)
	}
	rec.SweptWorkers = swept
	// After the workers: no orphan I/O worker still writes into a scratch
	// file being removed.
	dirs, err := sweep.Files(procRoot, owner)
	if err != nil {
		errs = append(errs, fmt.Errorf("sweep disk fault files: %w", err))
	}
	for _, d := range dirs {
		log.Warn("removed an orphan disk fault directory", "dir", d)
	}
	rec.SweptDirs = dirs
	// Network marks: the agent's qdiscs and nftables tables that no open
	// journal record named (invariant 3).
	nets, err := sweep.Network()
	switch {
	case errors.Is(err, syscall.EPERM):
		// Without CAP_NET_ADMIN this agent could not have made a qdisc or
		// an nftables table either, so there is nothing of ours to find.
		log.Debug("network sweep skipped: no permission to list qdiscs or nftables tables", "err", err)
	case err != nil:
		errs = append(errs, fmt.Errorf("sweep network faults: %w", err))
	}
	for _, n := range nets {
		log.Warn("removed an orphan network fault", "what", n)
	}
	rec.SweptNetwork = nets

	return rec, errors.Join(errs...)
}

// undoRecorded takes back one fault from what its journal records say,
// kind by kind. Each step is idempotent: a thing already gone is success.
func undoRecorded(procRoot, owner string, u journal.Undo) error {
	if u.WorkerPID > 0 {
		err := sweep.KillWorker(procRoot, u.WorkerPID, u.WorkerStartTicks)
		if err != nil && !errors.Is(err, sweep.ErrNotThatProcess) {
			return err
		}
	}
	// After the worker, which may still write into its scratch file.
	for _, d := range u.MarkedDirs {
		if err := sweep.RemoveMarkedDir(d, owner); err != nil {
			return err
		}
	}
	// A network fault: the agent's qdiscs off, the original root back.
	if err := network.Restore(u); err != nil {
		return err
	}
	return partition.Restore(u)
}

// MarkOwner is the owner written into the marks of this agent's disk fault
// files: its state directory, made absolute, so that the sweep of one
// agent never removes another's (agent/sweep.Mark).
func MarkOwner(stateDir string) string {
	if abs, err := filepath.Abs(stateDir); err == nil {
		return abs
	}
	return stateDir
}

// Cleanup takes back everything an agent with cfg's state directory and
// binary left behind, as start-up does, without starting an agent: it is
// `turbulence-agent cleanup`, run by systemd after the agent stops
// (ExecStopPost). It is idempotent, and refuses with journal.ErrLocked
// while an agent holds the state directory.
func Cleanup(cfg Config) (Recovery, error) {
	cfg, err := withDefaults(cfg)
	if err != nil {
		return Recovery{}, err
	}
	j, rec, err := recoverHost(cfg.Logger, cfg.StateDir, cfg.ProcRoot, cfg.WorkerBinary)
	if j != nil {
		if cerr := j.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}
	return rec, err
}
