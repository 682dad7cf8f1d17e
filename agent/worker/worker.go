package worker

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/turbulence-sre/turbulence/agent/leasefile"
)

// Exit codes of a worker process.
const (
	// ExitOK: the deadline was reached or SIGTERM asked the worker to stop.
	ExitOK = 0
	// ExitFailure: the worker could not do its job (e.g. pinning failed).
	ExitFailure = 1
	// ExitUsage: the argv was refused; nothing was started.
	ExitUsage = 2
	// ExitLeaseExpired: the owning agent's lease ran out more than
	// leasefile.Grace ago and the agent did not take the fault back (it is
	// frozen or gone), so the worker ended itself (invariant 2).
	ExitLeaseExpired = 3
)

// leaseCheckEvery is how often a worker with an owner reads the owner's
// lease file: a stat and a read of a few bytes, four times a second, bound
// how far past the lease's end and its grace a frozen agent's worker runs.
const leaseCheckEvery = 250 * time.Millisecond

// Subcommand is the argv word of the agent binary that selects worker mode.
const Subcommand = "worker"

const usage = `usage: worker KIND --fault-id ID [--owner STATE-DIR] ... (the owner, the agent's state directory, marks the process)
       worker cpu --fault-id ID --cores N --load PCT --deadline UNIXNANOS [--cpus 0,2] [--nice N]
       worker memory --fault-id ID --bytes N --deadline UNIXNANOS [--ramp DURATION] [--mlock] [--nice N]
       worker disk-io --fault-id ID --file PATH --file-bytes N --mode read|write|mixed --block-size N --workers N --deadline UNIXNANOS [--bytes-per-second N] [--iops N] [--direct] [--nice N]`

// Main runs a worker from its argv (the words after "worker") and returns
// the process exit code. It writes diagnostics to stderr, which the agent
// passes through to its own log stream.
func Main(args []string) int {
	return run(args, os.Stderr)
}

func run(args []string, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return ExitUsage
	}
	kind := args[0]
	var (
		faultID  string
		owner    string
		nice     int
		deadline time.Time
		work     func(ctx context.Context) error
	)
	switch kind {
	case "cpu":
		spec, err := ParseCPUArgs(args[1:])
		if err != nil {
			fmt.Fprintf(stderr, "turbulence worker cpu: %v\n%s\n", err, usage)
			return ExitUsage
		}
		faultID, owner, nice, deadline = spec.FaultID, spec.Owner, spec.Nice, spec.Deadline
		work = func(ctx context.Context) error { return RunCPU(ctx, spec) }
	case "memory":
		spec, err := ParseMemoryArgs(args[1:])
		if err != nil {
			fmt.Fprintf(stderr, "turbulence worker memory: %v\n%s\n", err, usage)
			return ExitUsage
		}
		faultID, owner, nice, deadline = spec.FaultID, spec.Owner, spec.Nice, spec.Deadline
		work = func(ctx context.Context) error { return RunMemory(ctx, spec, stderr) }
	case "disk-io":
		spec, err := ParseDiskIOArgs(args[1:])
		if err != nil {
			fmt.Fprintf(stderr, "turbulence worker disk-io: %v\n%s\n", err, usage)
			return ExitUsage
		}
		faultID, owner, nice, deadline = spec.FaultID, spec.Owner, spec.Nice, spec.Deadline
		work = func(ctx context.Context) error { return RunDiskIO(ctx, spec) }
	default:
		fmt.Fprintf(stderr, "turbulence worker: unknown kind %q\n%s\n", kind, usage)
		return ExitUsage
	}
	// SIGTERM is how the agent stops a worker before its deadline; the
	// handler turns it into a clean return instead of a kill.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if nice != 0 {
		// Before the work starts, so that not one period of load runs at
		// the wrong priority.
		if err := applyNice(nice); err != nil {
			fmt.Fprintf(stderr, "turbulence worker %s %s: %v\n", kind, faultID, err)
			return ExitFailure
		}
	}
	// Invariant 1, defence in depth: from here on the process ends at its
	// deadline by itself, on the kernel's clock, whatever the work or the
	// agent does. Invariant 2 likewise: it ends when its owner's lease has
	// run out, as the owner's guardians judge it, should the owner be
	// frozen (SIGSTOP, a wedged process) and unable to run its own lease
	// timer; a dead owner's workers die with it (PR_SET_PDEATHSIG).
	exitAtDeadline(deadline, ExitOK, leaseLapsed(owner, kind, faultID, stderr))
	if err := work(ctx); err != nil {
		fmt.Fprintf(stderr, "turbulence worker %s %s: %v\n", kind, faultID, err)
		return ExitFailure
	}
	return ExitOK
}

// leaseLapsed returns the lease check of a worker of owner, nil when the
// worker has no owner (and so no lease file): it reports, once, on stderr
// why the worker is about to end.
func leaseLapsed(owner, kind, faultID string, stderr io.Writer) func() bool {
	if owner == "" {
		return nil
	}
	return func() bool {
		expiry, lapsed := leasefile.Lapsed(owner)
		if lapsed {
			fmt.Fprintf(stderr, "turbulence worker %s %s: %s: the lease of its agent (%s) ran out at %s and the agent did not end this worker; exiting with status %d\n",
				kind, faultID, ErrLeaseExpired, owner, expiry.UTC().Format(time.RFC3339Nano), ExitLeaseExpired)
		}
		return lapsed
	}
}
