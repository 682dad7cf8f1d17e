// Command turbulence-agent is the Turbulence host agent: it dials the
// controllers (it opens no listening TCP port but an optional
// --metrics-addr), applies the faults they
// send, and takes every one back at its deadline, when it loses the
// controllers, on a halt, or when it stops.
//
// Usage:
//
//	turbulence-agent [run] [--controller host:port]... [--ca F --cert F --key F]
//	                 [--state-dir DIR] [--policy FILE] [--label k=v]... [--labels-file FILE]
//	                 [--metrics-addr host:port]
//	turbulence-agent cleanup [--state-dir DIR]
//	turbulence-agent status [-o text|json] [--socket PATH]
//	turbulence-agent halt [--reason TEXT] [--socket PATH]
//	turbulence-agent resume [--socket PATH]
//	turbulence-agent help | --help | --version
//
// status, halt and resume talk to the running agent over its root-only
// unix socket (default /run/turbulence-agent/agent.sock) and need no
// controller: halt reverts every fault on this host at once and refuses new
// ones until resume, whatever the controller says (invariant 5).
//
// Exit codes: 0 stopped cleanly (every fault reverted), 1 runtime error,
// 2 usage error. A second SIGINT/SIGTERM during shutdown exits at once with
// the signal's default action; workers die with the agent (PDEATHSIG).
//
// `turbulence-agent worker …` and `turbulence-agent guard …` are the hidden
// re-exec targets of the agent's own workers (agent/worker) and of the
// guardians of its faults without a worker (agent/guardian); people never
// run them.
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
	"runtime"
	"strings"
	"syscall"

	"github.com/turbulence-sre/turbulence/agent"
	"github.com/turbulence-sre/turbulence/agent/guardian"
	"github.com/turbulence-sre/turbulence/agent/localapi"
	"github.com/turbulence-sre/turbulence/agent/policy"
	"github.com/turbulence-sre/turbulence/agent/worker"
	"github.com/turbulence-sre/turbulence/internal/metrics"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	"github.com/turbulence-sre/turbulence/internal/version"
)

// defaultStateDir is where the packaged agent keeps its journal (the
// unit's StateDirectory=turbulence).
const defaultStateDir = "/var/lib/turbulence"

// The agent's certificate files by default: the one layout that
// `turbctl tls cert create --role agent` writes, the systemd unit names
// and packaging/README.md documents.
const (
	DefaultCA   = "/etc/turbulence/tls/ca.crt"
	DefaultCert = "/etc/turbulence/tls/agent.crt"
	DefaultKey  = "/etc/turbulence/tls/agent.key"
)

const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

func run(args []string, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case worker.Subcommand:
			return worker.Main(args[1:])
		case guardian.Subcommand:
			return runGuardian(args[1:], stderr)
		case "cleanup":
			return runCleanup(args[1:], os.Stdout, stderr)
		case "run":
			args = args[1:]
		case "status", "halt", "resume":
			return runLocal(args[0], args[1:], os.Stdout, stderr)
		case "help":
			printUsage(os.Stdout, newRunFlagSet(io.Discard, &runFlags{}))
			return exitOK
		case "version", "-version", "--version":
			fmt.Fprintln(os.Stdout, version.Line("turbulence-agent"))
			return exitOK
		}
	}
	cfg, err := parseRunFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if errors.Is(err, errVersion) {
		fmt.Fprintln(os.Stdout, version.Line("turbulence-agent"))
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "turbulence-agent: %v\n", err)
		return exitUsage
	}
	if runtime.GOOS != "linux" {
		fmt.Fprintln(stderr, "turbulence-agent: runs on Linux only")
		return exitFailure
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	cfg.Logger = logger
	useSystemd(&cfg, logger)
	lowerOwnOOMScore(logger)
	a, err := agent.New(cfg)
	if err != nil {
		logger.Error("cannot start", "err", err)
		return exitFailure
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer tlsutil.ReloadOnSIGHUP(logger)() // SIGHUP reloads the certificate, never kills the agent
	go func() {
		<-ctx.Done()
		// Restore the default action: a second signal kills the agent at
		// once instead of waiting for the orderly revert (docs/style.md, errors, logging and shutdown).
		stop()
	}()
	if err := a.Run(ctx); err != nil {
		logger.Error("agent failed", "err", err)
		return exitFailure
	}
	return exitOK
}

// runGuardian is `turbulence-agent guard --state-dir DIR --fault-id ID`,
// started by the agent for each fault without a worker (agent/guardian).
func runGuardian(args []string, stderr io.Writer) int {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "turbulence-agent guard: find own executable: %v\n", err)
		return exitFailure
	}
	recoverer := func(stateDir string) guardian.Recoverer { return agent.RecoverGuarded(stateDir, exe) }
	return guardian.Main(args, os.Stdin, stderr, agent.JournalFile, recoverer)
}

// usageHead is the synopsis `turbulence-agent help` and --help print
// before the flags of run.
const usageHead = `Usage:
  turbulence-agent [run] [flags]     run the agent (the default; flags below)
  turbulence-agent status [-o text|json] [--socket PATH]
                                     what this host's agent is doing
  turbulence-agent halt [--reason TEXT] [--socket PATH]
                                     revert every fault here now and refuse new ones
  turbulence-agent resume [--socket PATH]
                                     accept faults again after a local halt
  turbulence-agent cleanup [--state-dir DIR]
                                     take back what a stopped agent left (systemd ExecStopPost)
  turbulence-agent help              this text
  turbulence-agent --version         print the version and exit

Flags of run:
`

// printUsage writes the synopsis of every subcommand and the flags of run.
func printUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, usageHead)
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// runFlags is where the run subcommand's flags land.
type runFlags struct {
	controllers listFlag
	labels      labelFlag
	watchFS     listFlag
	cfg         agent.Config
	version     bool
}

// newRunFlagSet declares the run subcommand's flags into r.
func newRunFlagSet(stderr io.Writer, r *runFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("turbulence-agent run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { printUsage(stderr, fs) }
	r.labels = labelFlag{}
	cfg := &r.cfg
	fs.Var(&r.controllers, "controller", "controller address host:port (repeatable or comma-separated; default 127.0.0.1:7420)")
	fs.StringVar(&cfg.TLS.CA, "ca", DefaultCA, "CA certificate (PEM)")
	fs.StringVar(&cfg.TLS.Cert, "cert", DefaultCert, "agent certificate (PEM); its name is the agent ID")
	fs.StringVar(&cfg.TLS.Key, "key", DefaultKey, "agent key (PEM)")
	fs.StringVar(&cfg.TLSServerName, "tls-server-name", "", "name to verify in the controllers' certificates (default: the host of each --controller address)")
	fs.StringVar(&cfg.StateDir, "state-dir", defaultStateDir, "directory for the agent's local state (its journal)")
	fs.StringVar(&cfg.PolicyPath, "policy", "", "local policy file (default "+policy.DefaultPath+" if it exists, else the built-in defaults)")
	fs.Var(r.labels, "label", "label k=v sent to the controller (repeatable; overrides --labels-file)")
	fs.StringVar(&r.cfg.LabelsFile, "labels-file", "", "YAML map of labels sent to the controller (key: value)")
	fs.StringVar(&cfg.LocalSocket, "socket", localapi.DefaultPath, "the operator's local unix socket (status, halt, resume)")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", "", "serve Prometheus metrics on http://host:port/metrics (default: off, no TCP port)")
	fs.Var(&r.watchFS, "watch-fs", "path whose filesystem's usage the heartbeats report, besides the state directory's (repeatable or comma-separated)")
	fs.BoolVar(&r.version, "version", false, "print the version and exit")
	return fs
}

// errVersion is returned by parseRunFlags for --version.
var errVersion = errors.New("version requested")

// parseRunFlags reads the run subcommand's flags into an agent.Config.
func parseRunFlags(args []string, stderr io.Writer) (agent.Config, error) {
	var r runFlags
	fs := newRunFlagSet(stderr, &r)
	if err := fs.Parse(args); err != nil {
		return agent.Config{}, err
	}
	if r.version {
		return agent.Config{}, errVersion
	}
	if fs.NArg() > 0 {
		return agent.Config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg := r.cfg
	if len(r.controllers) == 0 {
		r.controllers = listFlag{"127.0.0.1:7420"}
	}
	if cfg.MetricsAddr != "" {
		if err := metrics.CheckAddr(cfg.MetricsAddr); err != nil {
			return agent.Config{}, err
		}
	}
	cfg.Controllers = r.controllers
	cfg.MetricsPaths = r.watchFS
	cfg.Labels = r.labels
	return cfg, nil
}

// listFlag is a repeatable flag whose values may also be comma-separated.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for part := range strings.SplitSeq(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*l = append(*l, part)
		}
	}
	return nil
}

// labelFlag collects repeatable k=v labels.
type labelFlag map[string]string

func (l labelFlag) String() string {
	parts := make([]string, 0, len(l))
	for k, v := range l {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, ",")
}

func (l labelFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("label %q is not k=v", v)
	}
	l[k] = val
	return nil
}
