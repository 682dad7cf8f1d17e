package guardian

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/turbulence-sre/turbulence/agent/sweep"
)

// Subcommand is the argv word of the agent binary that runs a guardian.
const Subcommand = "guard"

// exitWait bounds how long Close waits for a guardian to exit after its
// pipe closed: it only reads the journal and exits.
const exitWait = 10 * time.Second

// Starter starts the guardians of one agent.
type Starter struct {
	// Binary is the agent's own executable, re-executed as the guardian.
	Binary string
	// StateDir is the agent's state directory, absolute: the guardian
	// reads its journal, lease file and fault locks there.
	StateDir string
}

// Args is the guardian's fixed argv after the binary: it names its owner
// (the state directory) and its fault, which is how start-up recovery
// finds the orphan guardians of its own state directory (invariant 7).
func Args(stateDir, faultID string) []string {
	return []string{Subcommand, "--state-dir", stateDir, "--fault-id", faultID}
}

// Guardian is a started guardian, seen from the agent.
type Guardian struct {
	stateDir string
	faultID  string
	cmd      *exec.Cmd
	pipe     *os.File // the agent's end of the guardian's stdin
	exited   chan struct{}
}

// Start starts the guardian of fault id. The fault's intent must already
// be in the journal: that is all the guardian knows of it.
func (s Starter) Start(id string) (*Guardian, error) {
	// The lock file exists before the guardian does, so that an outcome
	// can be written to it by whoever reverts first.
	l, err := LockFault(s.StateDir, id)
	if err != nil {
		return nil, err
	}
	if err := l.Unlock(); err != nil {
		return nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("guardian pipe: %w", err)
	}
	cmd := exec.Command(s.Binary, Args(s.StateDir, id)...)
	cmd.Stdin = r
	cmd.Stderr = os.Stderr
	// A session of its own: a signal to the agent's process group or
	// terminal does not reach it, and nothing ties its life to the
	// agent's (no PR_SET_PDEATHSIG, unlike a worker).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	_ = r.Close() // the child has its own copy; ours would hide the agent's death
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("start the guardian of fault %s: %w", id, err)
	}
	g := &Guardian{stateDir: s.StateDir, faultID: id, cmd: cmd, pipe: w, exited: make(chan struct{})}
	go func() {
		// Reaped by its parent while the agent lives; by init after.
		_ = cmd.Wait()
		close(g.exited)
	}()
	return g, nil
}

// Pid returns the guardian's process ID.
func (g *Guardian) Pid() int { return g.cmd.Process.Pid }

// Revert takes the fault back with revert under its lock, unless the
// guardian already did; see the package Revert.
func (g *Guardian) Revert(reason string, revert func() error) (Outcome, bool, error) {
	return Revert(g.stateDir, g.faultID, reason, revert)
}

// Close ends the guardian once the fault is closed in the journal (or was
// never applied): it closes the pipe, which wakes the guardian to find the
// fault closed, waits for it to exit, and removes the lock file.
func (g *Guardian) Close() error {
	_ = g.pipe.Close() // only ever closed here; its error changes nothing
	timer := time.NewTimer(exitWait)
	defer timer.Stop()
	select {
	case <-g.exited:
	case <-timer.C:
		// It should have gone; it holds nothing the journal does not.
		_ = g.cmd.Process.Kill()
		<-g.exited
	}
	return Forget(g.stateDir, g.faultID)
}

// KillOrphans kills the guardians of stateDir's agent that are not the
// caller's children (an earlier run's), found by their argv and their
// executable, never by name alone (invariant 7), and returns them.
func KillOrphans(procRoot, binary, stateDir string) ([]sweep.Process, error) {
	ps, err := sweep.Processes(procRoot, binary, os.Getpid())
	if err != nil {
		return nil, err
	}
	var mine []sweep.Process
	for _, p := range ps {
		if p.Args[1] == Subcommand && p.Flag("--state-dir") == stateDir {
			mine = append(mine, p)
		}
	}
	return sweep.Kill(procRoot, mine)
}

// Overtaken handles an apply that finished after the guardian had already
// recorded the fault's end: the agent was frozen in the middle of its
// apply past the fault's deadline or lease, the guardian took back what
// was on the host then, and the apply went on when the agent woke. Under
// the fault's lock, when an outcome is there, revert takes back what the
// apply left, and the guardian's outcome is returned with found true;
// with no outcome nothing is done.
func (g *Guardian) Overtaken(revert func() error) (o Outcome, found bool, err error) {
	l, err := LockFault(g.stateDir, g.faultID)
	if err != nil {
		return Outcome{}, false, err
	}
	defer func() { _ = l.Unlock() }()
	o, found, err = l.Outcome()
	if err != nil || !found {
		return o, false, err
	}
	return o, true, revert()
}
