// Command turbulence-controller runs one Turbulence controller node: the
// raft-replicated record of agents, faults and the fleet halt flag, the
// ControlService for turbctl and the AgentService the agents dial.
//
// Exit codes: 0 after a clean shutdown (SIGINT/SIGTERM), 1 when the
// controller fails, 2 on a usage error.
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
	"syscall"
	"time"

	"github.com/turbulence-sre/turbulence/controller"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// devDataDir is the data directory of --dev when --data-dir is not given.
const devDataDir = "turbulence-dev"

// devAgentName is the agent ID in the dev agent certificate.
const devAgentName = "dev-agent"

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

func run(args []string, stderr io.Writer) int {
	cfg := controller.DefaultConfig()
	fs := flag.NewFlagSet("turbulence-controller", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.NodeID, "node-id", cfg.NodeID, "raft node ID of this controller (stable across restarts)")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for raft.db and snapshots (with --dev, default ./"+devDataDir+")")
	fs.StringVar(&cfg.GRPCAddr, "grpc-addr", cfg.GRPCAddr, "address for the gRPC API (turbctl and agents)")
	fs.StringVar(&cfg.RaftAddr, "raft-addr", cfg.RaftAddr, "address for raft traffic between controllers")
	fs.StringVar(&cfg.TLS.CA, "ca", "", "CA certificate (PEM) that signs every Turbulence certificate")
	fs.StringVar(&cfg.TLS.Cert, "cert", "", "this controller's certificate (PEM, role controller)")
	fs.StringVar(&cfg.TLS.Key, "key", "", "this controller's private key (PEM)")
	dev := fs.Bool("dev", false, "create (or reuse) a throwaway CA and certificates under <data-dir>/tls and use them")
	fs.DurationVar(&cfg.LeaseTTL, "lease-ttl", cfg.LeaseTTL, "agents revert every fault after hearing nothing for this long")
	fs.DurationVar(&cfg.HeartbeatInterval, "heartbeat-interval", cfg.HeartbeatInterval, "how often agents report")
	fs.DurationVar(&cfg.DefaultFaultDuration, "default-duration", cfg.DefaultFaultDuration, "duration of a fault whose spec has none")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "turbulence-controller: unexpected arguments: %v\n", fs.Args())
		return exitUsage
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	cfg.Logger = logger

	if *dev {
		if !flagSet(fs, "data-dir") {
			cfg.DataDir = devDataDir
		}
		pki, err := tlsutil.EnsureDevPKI(filepath.Join(cfg.DataDir, "tls"), devAgentName)
		if err != nil {
			logger.Error("cannot create the dev PKI", "error", err)
			return exitFailure
		}
		cfg.TLS = pki.Controller
		printDevPKI(stderr, pki)
	} else if cfg.TLS.CA == "" || cfg.TLS.Cert == "" || cfg.TLS.Key == "" {
		fmt.Fprintln(stderr, "turbulence-controller: --ca, --cert and --key are required (or --dev for a throwaway PKI)")
		return exitUsage
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	c, err := controller.New(cfg)
	if err != nil {
		logger.Error("cannot start controller", "error", err)
		return exitFailure
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	// "controller ready" is logged by the controller when it leads; here
	// only a slow start is worth a word.
	go warnIfNotLeader(ctx, c, logger)
	if err := <-done; err != nil {
		logger.Error("controller failed", "error", err)
		return exitFailure
	}
	return exitOK
}

func warnIfNotLeader(ctx context.Context, c *controller.Controller, logger *slog.Logger) {
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := c.WaitLeader(wctx); err != nil && ctx.Err() == nil {
		logger.Warn("not the raft leader after 30s; is this node part of a cluster without quorum?")
	}
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func printDevPKI(w io.Writer, pki tlsutil.DevPKI) {
	abs := func(p string) string {
		if a, err := filepath.Abs(p); err == nil {
			return a
		}
		return p
	}
	fmt.Fprintf(w, `dev mode: throwaway PKI in %s (not for production)
  admin (turbctl):  --ca %s --cert %s --key %s
  agent %q:  --ca %s --cert %s --key %s
`,
		abs(pki.Dir),
		abs(pki.Admin.CA), abs(pki.Admin.Cert), abs(pki.Admin.Key),
		devAgentName, abs(pki.Agent.CA), abs(pki.Agent.Cert), abs(pki.Agent.Key))
}
