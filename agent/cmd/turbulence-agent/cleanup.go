package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/turbulence-sre/turbulence/agent"
	"github.com/turbulence-sre/turbulence/agent/journal"
)

// runCleanup is `turbulence-agent cleanup [--state-dir DIR]`: it takes back
// everything the agent of that state directory left behind (the journal's
// open faults, then that agent's own orphan marks), as start-up does, and
// prints what it did. Other agents' marks are listed and left alone. systemd runs it after
// the agent stops (ExecStopPost), so even a SIGKILLed agent leaves nothing.
// Idempotent; refused while an agent holds the state directory.
func runCleanup(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("turbulence-agent cleanup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	stateDir := fs.String("state-dir", defaultStateDir, "the agent's state directory (its journal)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "turbulence-agent cleanup: unexpected arguments %q\n", fs.Args())
		return exitUsage
	}
	if _, err := os.Stat(*stateDir); errors.Is(err, os.ErrNotExist) {
		// No agent ever ran with it: no journal and no marks of its owner.
		fmt.Fprintf(stdout, "nothing to clean up: there is no state directory %s\n", *stateDir)
		return exitOK
	}
	rec, err := agent.Cleanup(agent.Config{
		StateDir: *stateDir,
		Logger:   slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	for _, st := range rec.Reverted {
		fmt.Fprintf(stdout, "reverted fault %s (left open by an earlier run; the agent reports it at its next start)\n", st.GetFaultId())
	}
	for _, m := range rec.Swept {
		fmt.Fprintf(stdout, "removed %s (left by an earlier run)\n", m)
	}
	for _, m := range rec.Foreign {
		fmt.Fprintf(stdout, "left %s: not this state directory's\n", m)
	}
	if errors.Is(err, journal.ErrLocked) {
		fmt.Fprintf(stderr, "turbulence-agent cleanup: the state directory %s is in use by a running agent: stop it first (its own shutdown reverts every fault)\n", *stateDir)
		return exitFailure
	}
	if err != nil {
		fmt.Fprintf(stderr, "turbulence-agent cleanup: %v\n", err)
		return exitFailure
	}
	if len(rec.Reverted) == 0 && len(rec.Swept) == 0 {
		fmt.Fprintln(stdout, "nothing to clean up")
	}
	return exitOK
}

// lowerOwnOOMScore makes the OOM killer pick anything before the agent
// (docs/design.md: the OOM killer takes the worker, not the agent). Memory
// workers raise their own score to 1000. Lowering needs root
// (CAP_SYS_RESOURCE); without it the agent runs on with a warning.
func lowerOwnOOMScore(log *slog.Logger) {
	if err := os.WriteFile("/proc/self/oom_score_adj", []byte("-900"), 0); err != nil {
		log.Warn("cannot lower the agent's oom_score_adj to -900; the OOM killer might pick the agent", "err", err)
	}
}
