// Command turbulence-controller runs one Turbulence controller node: the
// raft-replicated record of agents, faults and the fleet halt flag, the
// ControlService for turbctl and the AgentService the agents dial.
//
// Cluster formation: a node with no raft state and no cluster flags
// bootstraps a one-node cluster (dev mode). For 3 or 5 nodes, start each
// initial node with the same
//
//	--bootstrap --peer c1=10.0.0.1:7421/10.0.0.1:7420,c2=…,c3=…
//
// (the address is raft-addr/grpc-addr), or start one and --join the others
// to it, or start every initial node with the same
//
//	--bootstrap-expect 3 --join 10.0.0.1:7420,10.0.0.2:7420,10.0.0.3:7420
//
// and let them find each other: each asks every --join address who it is
// and bootstraps when all 3 are known (a node that finds them in a cluster
// already joins it instead). A node that has raft state never bootstraps
// and never joins: it rejoins its cluster from its log, whatever the flags
// say.
//
// --metrics-addr host:port serves Prometheus metrics on /metrics
// (docs/metrics.md); it is off by default.
//
// SIGHUP reloads the certificate files at once (they are also reloaded
// when they change, at the next handshake); rotating the CA needs a
// restart.
//
// Lost quorum: `turbulence-controller recover --data-dir … --node-id …
// --raft-addr … --grpc-addr … [--peer …]`, run on a stopped node, makes
// the voters named (that node alone without --peer) the whole
// configuration, on raft's RecoverCluster; docs/security.md gives the
// procedure.
//
// --version prints the build's version (module version and VCS revision,
// from the binary's build information) and exits.
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
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/turbulence-sre/turbulence/controller"
	"github.com/turbulence-sre/turbulence/controller/agentapi"
	"github.com/turbulence-sre/turbulence/controller/forward"
	"github.com/turbulence-sre/turbulence/controller/raftnode"
	"github.com/turbulence-sre/turbulence/internal/metrics"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	"github.com/turbulence-sre/turbulence/internal/version"
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
	if len(args) > 0 && args[0] == "recover" {
		return runRecover(args[1:], stderr)
	}
	if slices.ContainsFunc(args, isVersionFlag) || (len(args) > 0 && args[0] == "version") {
		fmt.Fprintln(os.Stdout, version.Line("turbulence-controller"))
		return exitOK
	}
	cfg, dev, devSANs, code, ok := parseFlagsDev(args, stderr)
	if !ok {
		return code
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	cfg.Logger = logger

	if dev {
		pki, err := tlsutil.EnsureDevPKI(filepath.Join(cfg.DataDir, "tls"), devAgentName, devSANs...)
		if err != nil {
			logger.Error("cannot create the dev PKI", "error", err)
			return exitFailure
		}
		cfg.TLS = pki.Controller
		printDevPKI(stderr, pki)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	defer tlsutil.ReloadOnSIGHUP(logger)() // SIGHUP: reload every certificate now
	reg := metrics.NewRegistry()
	if cfg.MetricsAddr != "" { // bound before New: a busy port fails before raft starts
		metrics.RegisterCertExpiry(reg)
		var opts []metrics.Option
		if cfg.Pprof {
			opts = append(opts, metrics.Profiling())
		}
		ms, err := metrics.Serve(ctx, cfg.MetricsAddr, reg, logger, opts...)
		if err != nil {
			logger.Error("cannot serve metrics", "error", err)
			return exitFailure
		}
		logger.Info("serving metrics", "addr", ms.Addr())
		defer func() { stop(); _ = ms.Wait() }()
	}
	c, err := controller.New(cfg)
	if err != nil {
		logger.Error("cannot start controller", "error", err)
		return exitFailure
	}
	c.RegisterMetrics(reg)
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	waitStopping := notifySystemd(ctx, logger)
	// "controller ready" is logged by the controller when it leads; here
	// only a slow start is worth a word.
	go warnIfNotLeader(ctx, c, logger)
	err = <-done
	stop() // a Run that failed on its own says STOPPING too
	waitStopping()
	if err != nil {
		logger.Error("controller failed", "error", err)
		return exitFailure
	}
	return exitOK
}

// parseFlags reads the command line into a checked controller
// configuration. ok is false when run must exit with code: exitUsage for
// a bad command line (every problem of the configuration listed at once,
// bootstrap-expect against --peer and --join among them), exitOK for -h.
func parseFlags(args []string, stderr io.Writer) (cfg controller.Config, dev bool, code int, ok bool) {
	cfg, dev, _, code, ok = parseFlagsDev(args, stderr)
	return cfg, dev, code, ok
}

// parseFlagsDev is parseFlags that also returns the extra names of the
// dev controller's certificate (--dev-san).
func parseFlagsDev(args []string, stderr io.Writer) (cfg controller.Config, dev bool, devSANs []string, code int, ok bool) {
	cfg = controller.DefaultConfig()
	fs := flag.NewFlagSet("turbulence-controller", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.NodeID, "node-id", cfg.NodeID, "raft node ID of this controller (stable across restarts)")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for raft.db and snapshots (with --dev, default ./"+devDataDir+")")
	fs.StringVar(&cfg.GRPCAddr, "grpc-addr", cfg.GRPCAddr, "address for the gRPC API (turbctl and agents)")
	fs.StringVar(&cfg.RaftAddr, "raft-addr", cfg.RaftAddr, "address for raft traffic between controllers")
	fs.StringVar(&cfg.TLS.CA, "ca", "", "CA certificate (PEM) that signs every Turbulence certificate")
	fs.StringVar(&cfg.TLS.Cert, "cert", "", "this controller's certificate (PEM, role controller)")
	fs.StringVar(&cfg.TLS.Key, "key", "", "this controller's private key (PEM)")
	devFlag := fs.Bool("dev", false, "create (or reuse) a throwaway CA and certificates under <data-dir>/tls and use them")
	fs.Func("dev-san", "with --dev: an extra IP address or DNS name for the controller's certificate, so that agents on other hosts can reach it; repeat or separate with commas", func(v string) error {
		sans, err := tlsutil.ParseSANs(v)
		devSANs = append(devSANs, sans...)
		return err
	})
	fs.DurationVar(&cfg.LeaseTTL, "lease-ttl", cfg.LeaseTTL, "agents revert every fault after hearing nothing for this long")
	fs.DurationVar(&cfg.HeartbeatInterval, "heartbeat-interval", cfg.HeartbeatInterval, "how often agents report while the fleet is small enough for --max-heartbeat-rate")
	fs.IntVar(&cfg.MaxHeartbeatRate, "max-heartbeat-rate", agentapi.DefaultMaxHeartbeatRate, fmt.Sprintf("heartbeats a second the leader plans for across the fleet: a larger fleet is told to beat slower, never slower than a third of --lease-ttl (at most %d)", controller.MaxHeartbeatRate))
	fs.DurationVar(&cfg.HostMetricsWindow, "host-metrics-window", cfg.HostMetricsWindow, "how far back the leader keeps each agent's host metrics (one sample per heartbeat, at most 3600)")
	fs.DurationVar(&cfg.DefaultFaultDuration, "default-duration", cfg.DefaultFaultDuration, "duration of a fault whose spec has none")
	fs.Float64Var(&cfg.MaxGroupPercent, "max-group-percent", cfg.MaxGroupPercent, "a fault group call may choose at most this percentage of the registered fleet")
	fs.IntVar(&cfg.MaxGroupAgents, "max-group-agents", cfg.MaxGroupAgents, "a fault group call may choose at most this many agents")
	fs.StringVar(&cfg.AdvertiseGRPCAddr, "advertise-grpc-addr", "", "gRPC address other controllers and agents use for this node (default: --grpc-addr)")
	fs.BoolVar(&cfg.Bootstrap, "bootstrap", false, "bootstrap the cluster of --peer when this node has no raft state (give every initial node the same --peer list); never bootstraps twice")
	fs.Func("peer", "initial cluster member id=raft-addr/grpc-addr, this node included; repeat or separate with commas (with --bootstrap or --bootstrap-expect)", func(v string) error {
		peers, err := parsePeers(v)
		cfg.Peers = append(cfg.Peers, peers...)
		return err
	})
	fs.Func("join", "gRPC address of an existing controller to ask for membership when this node has no raft state; repeat or separate with commas", func(v string) error {
		for a := range strings.SplitSeq(v, ",") {
			if a = strings.TrimSpace(a); a != "" {
				cfg.Join = append(cfg.Join, a)
			}
		}
		return nil
	})
	fs.IntVar(&cfg.BootstrapExpect, "bootstrap-expect", 0, fmt.Sprintf("bootstrap when this many initial controllers (1-%d) are known, from --peer or by asking every --join address; give every initial node the same count and list; never bootstraps a node with raft state", controller.MaxBootstrapExpect))
	fs.DurationVar(&cfg.HoldTimeout, "hold-timeout", forward.DefaultHoldTimeout, "how long a write waits for a leader during an election before it is refused")
	fs.DurationVar(&cfg.RaftElectionTimeout, "raft-election-timeout", raftnode.DefaultElectionTimeout,
		fmt.Sprintf("how long a follower hears nothing from the leader before it stands for election (%s to %s)", raftnode.MinElectionTimeout, raftnode.MaxElectionTimeout))
	fs.DurationVar(&cfg.Retention.EndedFaultAge, "retain-ended-faults", controller.DefaultEndedFaultAge, "remove an ended fault (and a fault group whose faults are all gone) this long after it ended")
	fs.IntVar(&cfg.Retention.MaxEndedFaults, "max-ended-faults", controller.DefaultMaxEndedFaults, "keep at most this many ended faults, removing the oldest ends first")
	fs.DurationVar(&cfg.Retention.DepartedAgentAge, "retain-departed-agents", controller.DefaultDepartedAgentAge, "remove an agent not heard from for this long that holds no live fault (it registers again when it comes back)")
	fs.DurationVar(&cfg.Retention.Interval, "prune-interval", controller.DefaultPruneInterval, "how often the leader removes what the retention flags no longer keep")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", "", "serve Prometheus metrics on http://host:port/metrics (default: off)")
	fs.BoolVar(&cfg.Pprof, "pprof", false, "also serve Go's runtime profiles on --metrics-addr under /debug/pprof/ (default: off; anyone who reaches the port can read them)")
	fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, false, nil, exitOK, false
		}
		return cfg, false, nil, exitUsage, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "turbulence-controller: unexpected arguments: %v\n", fs.Args())
		return cfg, false, nil, exitUsage, false
	}
	if *devFlag && !flagSet(fs, "data-dir") {
		cfg.DataDir = devDataDir
	}
	if !*devFlag && (cfg.TLS.CA == "" || cfg.TLS.Cert == "" || cfg.TLS.Key == "") {
		fmt.Fprintln(stderr, "turbulence-controller: --ca, --cert and --key are required (or --dev for a throwaway PKI)")
		return cfg, false, nil, exitUsage, false
	}
	// With --dev the certificates are made later; check the rest now, so
	// that a bad cluster flag is a usage error before anything is written.
	check := cfg
	if *devFlag {
		check.TLS = tlsutil.Files{CA: "dev", Cert: "dev", Key: "dev"}
	}
	if err := check.Validate(); err != nil {
		fmt.Fprintf(stderr, "turbulence-controller: %v\n", err)
		return cfg, false, nil, exitUsage, false
	}
	if err := metrics.CheckAddr(cfg.MetricsAddr); cfg.MetricsAddr != "" && err != nil {
		fmt.Fprintf(stderr, "turbulence-controller: %v\n", err)
		return cfg, false, nil, exitUsage, false
	}
	if cfg.Pprof && cfg.MetricsAddr == "" {
		fmt.Fprintln(stderr, "turbulence-controller: --pprof serves on the metrics listener; it needs --metrics-addr")
		return cfg, false, nil, exitUsage, false
	}
	if len(devSANs) > 0 && !*devFlag {
		fmt.Fprintln(stderr, "turbulence-controller: --dev-san names the dev controller's certificate; it needs --dev (without --dev, issue a certificate with 'turbctl tls cert create --ip/--dns')")
		return cfg, false, nil, exitUsage, false
	}
	return cfg, *devFlag, devSANs, exitOK, true
}

// isVersionFlag reports whether arg asks for the version; it wins over
// every other flag, so that `--version` works on any command line.
func isVersionFlag(arg string) bool {
	return arg == "--version" || arg == "-version"
}

func warnIfNotLeader(ctx context.Context, c *controller.Controller, logger *slog.Logger) {
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := c.WaitLeader(wctx); err != nil && ctx.Err() == nil {
		logger.Warn("not the raft leader after 30s; is this node part of a cluster without quorum?")
	}
}

// parsePeers reads "id=raft-addr/grpc-addr[,…]".
func parsePeers(v string) ([]raftnode.Peer, error) {
	var out []raftnode.Peer
	for p := range strings.SplitSeq(v, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		id, addr, ok := strings.Cut(p, "=")
		if !ok || id == "" {
			return nil, fmt.Errorf("peer %q: want id=raft-addr/grpc-addr", p)
		}
		a, err := raftnode.ParseAddress(addr)
		if err != nil {
			return nil, fmt.Errorf("peer %q: %w", p, err)
		}
		if a.GRPC == "" {
			return nil, fmt.Errorf("peer %q: the gRPC address is required (id=raft-addr/grpc-addr): followers forward writes and redirect agents to it", p)
		}
		out = append(out, raftnode.Peer{ID: id, Address: a})
	}
	return out, nil
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
