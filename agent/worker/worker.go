package worker

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Exit codes of a worker process.
const (
	// ExitOK: the deadline was reached or SIGTERM asked the worker to stop.
	ExitOK = 0
	// ExitFailure: the worker could not do its job (e.g. pinning failed).
	ExitFailure = 1
	// ExitUsage: the argv was refused; nothing was started.
	ExitUsage = 2
)

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
		faultID, nice, deadline = spec.FaultID, spec.Nice, spec.Deadline
		work = func(ctx context.Context) error { return RunCPU(ctx, spec) }
	case "memory":
		spec, err := ParseMemoryArgs(args[1:])
		if err != nil {
			fmt.Fprintf(stderr, "turbulence worker memory: %v\n%s\n", err, usage)
			return ExitUsage
		}
		faultID, nice, deadline = spec.FaultID, spec.Nice, spec.Deadline
		work = func(ctx context.Context) error { return RunMemory(ctx, spec, stderr) }
	case "disk-io":
		spec, err := ParseDiskIOArgs(args[1:])
		if err != nil {
			fmt.Fprintf(stderr, "turbulence worker disk-io: %v\n%s\n", err, usage)
			return ExitUsage
		}
		faultID, nice, deadline = spec.FaultID, spec.Nice, spec.Deadline
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
	// agent does.
	exitAtDeadline(deadline, ExitOK)
	if err := work(ctx); err != nil {
		fmt.Fprintf(stderr, "turbulence worker %s %s: %v\n", kind, faultID, err)
		return ExitFailure
	}
	return ExitOK
}
