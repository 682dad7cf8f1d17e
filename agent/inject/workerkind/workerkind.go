// Package workerkind is the part of the fault-kind lifecycle (agent/inject.Kind)
// that the kinds whose work is a worker process share: cpu, memory and disk
// I/O. Their undo record names the worker (PID and start time, so a reused
// PID is never killed) and the marked directories the fault made; their
// recovery kills that worker and removes those directories; their sweep
// kills the orphan workers of their own owner and kind. They need no
// guardian: a worker ends at its own deadline and dies with its agent
// (PR_SET_PDEATHSIG).
package workerkind

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/turbulence-sre/turbulence/agent/inject"
	"github.com/turbulence-sre/turbulence/agent/internal/procfs"
	"github.com/turbulence-sre/turbulence/agent/sweep"
	"github.com/turbulence-sre/turbulence/agent/worker"
)

// Lifecycle implements Recover, Sweep and Guarded for one worker kind.
type Lifecycle struct {
	// Word is the worker's kind word in its argv ("cpu", "memory",
	// "disk-io").
	Word string
	// Binary is the agent's executable, which every worker runs.
	Binary   string
	ProcRoot string
	Owner    inject.Owner
}

// Undo is a worker fault's undo record. Its JSON names are those the
// journal has always used, so records of earlier versions still decode.
type Undo struct {
	WorkerPID        int    `json:"worker_pid,omitempty"`
	WorkerStartTicks uint64 `json:"worker_start_ticks,omitempty"`
	// MarkedDirs are the fault's marked directories (an I/O load's scratch
	// file), removed after the worker is gone.
	MarkedDirs []string `json:"marked_dirs,omitempty"`
}

// Encode returns u as a journal undo record, with the worker's start time
// read from /proc when it is not set.
func (l Lifecycle) Encode(u Undo) []byte {
	if u.WorkerPID > 0 && u.WorkerStartTicks == 0 {
		if st, err := procfs.ReadStat(l.ProcRoot, u.WorkerPID); err == nil {
			u.WorkerStartTicks = st.StartTicks
		}
	}
	return inject.EncodeUndo(u)
}

// Guarded implements inject.Kind: workers guard themselves.
func (Lifecycle) Guarded() bool { return false }

// Recover implements inject.Kind: it kills the recorded worker (or, with
// no undo record, this owner's worker of the fault, found by its argv) and
// removes the recorded marked directories.
func (l Lifecycle) Recover(_ context.Context, r inject.Recorded) error {
	u, _, err := inject.DecodeUndo[Undo](r)
	if err != nil {
		return err
	}
	var errs []error
	if u.WorkerPID > 0 {
		if err := sweep.KillWorker(l.ProcRoot, u.WorkerPID, u.WorkerStartTicks); err != nil && !errors.Is(err, sweep.ErrNotThatProcess) {
			errs = append(errs, err)
		}
	} else {
		// No undo record: the worker, if it was started, carries the
		// fault ID and this owner in its argv.
		ws, _, err := l.workers()
		if err != nil {
			return err
		}
		ws = slices.DeleteFunc(ws, func(p sweep.Process) bool { return p.Flag("--fault-id") != r.FaultID })
		if _, err := sweep.Kill(l.ProcRoot, ws); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	// After the worker, which may still write into its scratch file.
	for _, d := range u.MarkedDirs {
		if err := sweep.RemoveMarkedDir(d, l.Owner.StateDir); err != nil {
			return err
		}
	}
	return nil
}

// Sweep implements inject.Kind: it kills this owner's orphan workers of
// this kind that no open fault names, and reports other owners' workers.
func (l Lifecycle) Sweep(_ context.Context, open []inject.Recorded) (inject.Swept, error) {
	mine, foreign, err := l.workers()
	if err != nil {
		return inject.Swept{}, err
	}
	mine = slices.DeleteFunc(mine, func(p sweep.Process) bool {
		return slices.ContainsFunc(open, func(r inject.Recorded) bool { return r.FaultID == p.Flag("--fault-id") })
	})
	killed, err := sweep.Kill(l.ProcRoot, mine)
	var out inject.Swept
	for _, p := range killed {
		out.Removed = append(out.Removed, fmt.Sprintf("worker %d (%s fault %s)", p.PID, l.Word, p.Flag("--fault-id")))
	}
	for _, p := range foreign {
		owner := p.Flag("--owner")
		if owner == "" {
			owner = "unknown: no --owner"
		}
		out.Foreign = append(out.Foreign, fmt.Sprintf("worker %d (%s fault %s, owner %s)", p.PID, l.Word, p.Flag("--fault-id"), owner))
	}
	return out, err
}

// workers lists the processes of the agent's binary that are workers of
// this kind and not the caller's children, split by owner.
func (l Lifecycle) workers() (mine, foreign []sweep.Process, err error) {
	ps, err := sweep.Processes(l.ProcRoot, l.Binary, os.Getpid())
	if err != nil {
		return nil, nil, err
	}
	for _, p := range ps {
		if len(p.Args) < 3 || p.Args[1] != worker.Subcommand || p.Args[2] != l.Word || p.Flag("--fault-id") == "" {
			continue
		}
		if p.Flag("--owner") == l.Owner.StateDir {
			mine = append(mine, p)
		} else {
			foreign = append(foreign, p)
		}
	}
	return mine, foreign, nil
}
