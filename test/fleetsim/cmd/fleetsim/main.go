// Command fleetsim runs a simulated fleet against running controllers, for
// manual runs (docs/fleetsim.md):
//
//	turbulence-controller --dev &   # writes its CA to turbulence-dev/tls
//	go run ./test/fleetsim/cmd/fleetsim -controller 127.0.0.1:7420 -n 1000 -ca turbulence-dev/tls
//
// It mints one agent certificate per simulated agent from the CA in -ca
// (ca.crt and ca.key), starts the agents, reports when they are all
// attached and then, every -report, how many are attached and what their
// injectors recorded. Interrupt it (Ctrl-C) to stop every agent as a real
// agent stops.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/turbulence-sre/turbulence/internal/stats"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	"github.com/turbulence-sre/turbulence/test/fleetsim"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// options are the command line.
type options struct {
	controllers  []string
	n            int
	caDir        string
	prefix       string
	sharedSource bool
	logLevel     slog.Level
	report       time.Duration
	attachWait   time.Duration
}

func parse(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("fleetsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	controllers := fs.String("controller", "", "controller gRPC addresses, comma-separated (required)")
	fs.IntVar(&o.n, "n", 100, fmt.Sprintf("number of simulated agents, 1 to %d", fleetsim.MaxAgents))
	fs.StringVar(&o.caDir, "ca", "", "directory holding the fleet CA as ca.crt and ca.key, e.g. turbulence-dev/tls (required)")
	fs.StringVar(&o.prefix, "prefix", "sim", "agent names are <prefix>-<i>")
	fs.BoolVar(&o.sharedSource, "shared-source", false, "dial every agent from the default source address instead of one loopback address each (the controller caps connections per source)")
	level := fs.String("log-level", "error", "level of the agents' log lines: debug, info, warn or error")
	fs.DurationVar(&o.report, "report", 10*time.Second, "how often to print the fleet's state")
	fs.DurationVar(&o.attachWait, "attach-timeout", 5*time.Minute, "how long to wait for every agent to attach")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var errs []error
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments: %v", fs.Args()))
	}
	for a := range strings.SplitSeq(*controllers, ",") {
		if a = strings.TrimSpace(a); a != "" {
			o.controllers = append(o.controllers, a)
		}
	}
	if len(o.controllers) == 0 {
		errs = append(errs, errors.New("-controller: at least one controller address is required"))
	}
	if o.n < 1 || o.n > fleetsim.MaxAgents {
		errs = append(errs, fmt.Errorf("-n: %d agents, want 1 to %d", o.n, fleetsim.MaxAgents))
	}
	if o.caDir == "" {
		errs = append(errs, errors.New("-ca: the directory of the fleet CA (ca.crt, ca.key) is required"))
	}
	if err := o.logLevel.UnmarshalText([]byte(*level)); err != nil {
		errs = append(errs, fmt.Errorf("-log-level: %q, want debug, info, warn or error", *level))
	}
	if o.report <= 0 {
		errs = append(errs, fmt.Errorf("-report: %s, want a positive duration", o.report))
	}
	if o.attachWait <= 0 {
		errs = append(errs, fmt.Errorf("-attach-timeout: %s, want a positive duration", o.attachWait))
	}
	return o, errors.Join(errs...)
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "fleetsim: %v\n", err)
		return exitUsage
	}
	ca, err := tlsutil.LoadCADir(o.caDir)
	if err != nil {
		fmt.Fprintf(stderr, "fleetsim: -ca: %v\n", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: o.logLevel}))
	t0 := time.Now()
	f, err := fleetsim.Start(ctx, fleetsim.Config{
		Controllers:  o.controllers,
		CA:           ca,
		CAFile:       filepath.Join(o.caDir, tlsutil.CACertFile),
		N:            o.n,
		NamePrefix:   o.prefix,
		SharedSource: o.sharedSource,
		Logger:       logger,
	})
	if err != nil {
		fmt.Fprintf(stderr, "%v\n", err)
		return exitFailure
	}
	defer func() {
		fmt.Fprintln(stdout, "stopping every agent")
		f.Close()
	}()
	fmt.Fprintf(stdout, "%d agents started (certificates minted in %s)\n", o.n, f.Started().Sub(t0).Round(time.Millisecond))

	wctx, cancel := context.WithTimeout(ctx, o.attachWait)
	err = f.WaitAttached(wctx)
	cancel()
	if err != nil {
		fmt.Fprintf(stderr, "%v\n", err)
		return exitFailure
	}
	ms := stats.Millis(f.AttachTimes(f.Started()))
	fmt.Fprintf(stdout, "all %d agents attached: p50 %.0f ms, p99 %.0f ms, all %.0f ms after their start\n",
		o.n, stats.Median(ms), stats.Percentile(ms, 99), stats.Percentile(ms, 100))

	tick := time.NewTicker(o.report)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			report(stdout, f)
			return exitOK
		case <-tick.C:
			report(stdout, f)
		}
	}
}

// report prints one line of the fleet's state.
func report(w io.Writer, f *fleetsim.Fleet) {
	var applied, held, halted int
	for _, a := range f.Agents() {
		for _, rc := range a.Receipts() {
			applied++
			if rc.RevertedAt.IsZero() {
				held++
			}
		}
		if a.Halted() {
			halted++
		}
	}
	fmt.Fprintf(w, "%s attached %d/%d, faults applied %d (held %d), halted agents %d, lease expiries %d\n",
		time.Now().Format(time.TimeOnly), f.Attached(), len(f.Agents()), applied, held, halted, f.LeaseExpiries())
}
