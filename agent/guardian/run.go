package guardian

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/turbulence-sre/turbulence/agent/journal"
	"github.com/turbulence-sre/turbulence/agent/leasefile"
)

// Grace is how long past a fault's deadline (or its lease's end) the
// guardian leaves the revert to a live agent before it acts itself. The
// agent reverts at the deadline; this only matters when it is hung or
// gone, and keeps the fault's end within a second of its deadline. A
// worker judges its agent's lease with the same grace (agent/leasefile).
const Grace = leasefile.Grace

// LockPatience is how long a guardian whose fault is due waits for the
// fault's lock before it takes the fault back without it (see takeBack).
// Grace plus LockPatience stays within the second past a fault's end that
// invariant 3 allows.
const LockPatience = 250 * time.Millisecond

// Exit codes of a guardian.
const (
	ExitOK    = 0
	ExitUsage = 2
)

// Recoverer takes back one fault from its journal record: the fault
// kind's Recover (agent wires it, agent/kinds.go).
type Recoverer func(ctx context.Context, o journal.Open) error

// Reasons a guardian reports for a fault it took back.
const (
	ReasonDeadline = "deadline (taken back by its guardian: the agent did not)"
	ReasonLease    = "lease expired (taken back by its guardian: the agent was gone)"
)

// retry bounds for a revert that fails in the guardian.
const (
	retryFirst = time.Second
	retryMax   = 30 * time.Second
)

// Main runs a guardian from its argv (the words after "guard") until its
// fault is closed or taken back, and returns the exit code. stdin is the
// pipe from the agent; journalFile is the journal's name inside the state
// directory; recoverer gives the Recoverer of the state directory's agent.
func Main(args []string, stdin io.Reader, stderr io.Writer, journalFile string, recoverer func(stateDir string) Recoverer) int {
	fs := flag.NewFlagSet("turbulence-agent guard", flag.ContinueOnError)
	fs.SetOutput(stderr)
	stateDir := fs.String("state-dir", "", "the owning agent's state directory, absolute")
	faultID := fs.String("fault-id", "", "the fault to guard")
	if err := fs.Parse(args); err != nil {
		return ExitUsage
	}
	if fs.NArg() > 0 || !filepath.IsAbs(*stateDir) || *faultID == "" {
		fmt.Fprintln(stderr, "usage: turbulence-agent guard --state-dir ABSOLUTE-DIR --fault-id ID (started by the agent, not by hand)")
		return ExitUsage
	}
	g := &watch{
		log:      slog.New(slog.NewTextHandler(stderr, nil)).With("component", "guardian", "fault_id", *faultID, "pid", os.Getpid()),
		stateDir: *stateDir,
		faultID:  *faultID,
		journal:  filepath.Join(*stateDir, journalFile),
		recover:  recoverer(*stateDir),
	}
	g.run(stdin)
	return ExitOK
}

type watch struct {
	log      *slog.Logger
	stateDir string
	faultID  string
	journal  string
	recover  Recoverer
	// last is the fault's newest journal record seen: a journal that
	// becomes unreadable later (a deleted state directory) does not make
	// the guardian forget how to take its fault back.
	last *journal.Open
}

func (g *watch) run(stdin io.Reader) {
	agentGone := make(chan struct{})
	go func() {
		// Nothing is ever written to the pipe: it ends when the agent
		// closes it or dies. This goroutine ends with the process.
		_, _ = io.Copy(io.Discard, stdin)
		close(agentGone)
	}()
	gone, announced := false, false
	for {
		open, err := g.refresh()
		switch {
		case err != nil && g.last == nil:
			g.log.Error("guardian cannot read its fault from the journal; exiting", "err", err)
			return
		case !open:
			return // the agent closed the fault: nothing to guard
		}
		if g.hasOutcome() {
			return
		}
		if gone && !announced {
			// Said only now: an agent that closed the fault closes the
			// pipe too, and that is no news.
			g.log.Info("agent gone; guarding its fault")
			announced = true
		}
		wait, reason := g.due()
		if !gone {
			wait += Grace
		}
		if wait <= 0 {
			g.takeBack(reason)
			return
		}
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-agentGone:
			gone, agentGone = true, nil
		}
		timer.Stop()
	}
}

// refresh rereads the journal and reports whether the fault is open. An
// unreadable journal keeps the last record seen.
func (g *watch) refresh() (bool, error) {
	opens, err := journal.ReadFile(g.journal)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && g.last != nil {
			// The state directory is gone: nobody else will take the
			// fault back now.
			return true, nil
		}
		return g.last != nil, err
	}
	for i := range opens {
		if opens[i].Intent.FaultID == g.faultID {
			g.last = &opens[i]
			return true, nil
		}
	}
	return false, nil
}

// hasOutcome reads the fault's outcome without waiting for its lock: a
// holder stuck mid-revert must not hold the guardian up here (see
// takeBack). An outcome being written reads as torn, that is as none.
func (g *watch) hasOutcome() bool {
	l, err := unlockedOutcome(g.stateDir, g.faultID)
	if err != nil {
		return false
	}
	defer func() { _ = l.Unlock() }()
	_, ok, _ := l.Outcome()
	return ok
}

// due returns how long until the fault must be gone — its deadline, or
// the end of the agent's lease if that comes first — and why. Both are
// judged on the boot clock (agent/bootclock), so that a step of the wall
// clock neither makes the guardian end a healthy fault early (forward)
// nor keeps a dead or frozen agent's fault past its end (back). A record
// with no boot deadline of this boot is judged on the wall clock: an
// older agent's has none, and one of an earlier boot is never open here,
// since the agent's start-up recovery closes it before it starts any
// guardian.
func (g *watch) due() (time.Duration, string) {
	left, known := g.last.Intent.BootDeadline.Until()
	if !known && !g.last.Intent.Deadline.IsZero() {
		left, known = time.Until(g.last.Intent.Deadline), true
	}
	reason := ReasonDeadline
	if lease, _, ok, err := leasefile.Until(g.stateDir); err == nil && ok && (!known || lease < left) {
		left, known, reason = lease, true, ReasonLease
	}
	if !known {
		// Neither a deadline nor a lease: a fault with no known end is
		// past it.
		return time.Duration(math.MinInt64) / 2, ReasonDeadline
	}
	return left, reason
}

// takeBack reverts the fault under its lock, retrying until it succeeds or
// someone else has.
//
// The fault is due now, so the lock is waited for only LockPatience. A
// lock held longer than that belongs to an agent frozen or stuck in the
// middle of its own revert (SIGSTOP, a hung syscall): waiting for it would
// keep the fault in effect for as long as the agent stays stuck. The
// guardian then takes the fault back without the lock. That is safe: a
// revert only removes the fault's own marks (its recovery is written to be
// run again at any point, like start-up recovery), the agent releases the
// fault's resources (an interface, a table name) only after it released
// this lock, so no newer fault can be hit, and an agent that resumes finds
// its revert done or the guardian's outcome when it retries.
func (g *watch) takeBack(reason string) {
	wait := retryFirst
	for {
		rec := *g.last
		o, taken, err := g.revert(reason, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			return g.recover(ctx, rec)
		})
		switch {
		case err == nil && taken:
			g.log.Warn("guardian took the fault back", "reason", o.Reason)
			return
		case err == nil:
			return // the agent did
		}
		g.log.Error("guardian revert failed; retrying", "err", err, "next_attempt_in", wait)
		time.Sleep(wait) // a retry pause in a process of its own, not synchronisation
		wait = min(2*wait, retryMax)
		if open, _ := g.refresh(); !open {
			return
		}
	}
}

// revert runs Revert with a bounded wait for the lock; past it, without
// the lock (see takeBack).
func (g *watch) revert(reason string, revert func() error) (Outcome, bool, error) {
	l, ok, err := TryLockFault(g.stateDir, g.faultID, LockPatience)
	if err != nil {
		return Outcome{}, false, err
	}
	if !ok {
		g.log.Warn("the fault's lock is still held past its end (the agent is stuck mid-revert); taking the fault back without it",
			"waited", LockPatience)
		if l, err = unlockedOutcome(g.stateDir, g.faultID); err != nil {
			return Outcome{}, false, err
		}
	}
	defer func() { _ = l.Unlock() }()
	return revertHeld(l, g.faultID, reason, revert)
}
