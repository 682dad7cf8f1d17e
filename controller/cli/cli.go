package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	"github.com/turbulence-sre/turbulence/internal/version"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Defaults of the global flags.
const (
	DefaultController = "127.0.0.1:7420"
	DefaultTimeout    = 10 * time.Second
)

// Environment variables read when the matching flag is not given.
const (
	EnvController = "TURBCTL_CONTROLLER"
	EnvCA         = "TURBCTL_CA"
	EnvCert       = "TURBCTL_CERT"
	EnvKey        = "TURBCTL_KEY"
)

// env is what turbctl takes from its surroundings; tests replace it.
type env struct {
	now       func() time.Time
	getenv    func(string) string
	requestID func() string
	// backoff is the first pause before a retry; it doubles after.
	backoff time.Duration
	// poll is the pause between two reads while waiting for an agent's
	// verdict on a fault (fault apply --wait) when the event log cannot
	// be followed (the verdict is normally pushed); 0 means 1 ms.
	poll time.Duration
}

func defaultEnv() env {
	return env{now: time.Now, getenv: os.Getenv, requestID: newRequestID, backoff: 250 * time.Millisecond, poll: 100 * time.Millisecond}
}

// Main runs turbctl with args (without the program name) and returns the
// process exit code. SIGINT and SIGTERM cancel the running call.
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, defaultEnv(), args, stdout, stderr)
}

func run(ctx context.Context, e env, args []string, stdout, stderr io.Writer) int {
	a := &app{env: e, stdout: stdout, stderr: stderr}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	return report(stderr, root.ExecuteContext(ctx))
}

// app holds the global options and the output streams of one run.
type app struct {
	env            env
	stdout, stderr io.Writer

	controller string
	tls        tlsutil.Files
	serverName string
	timeout    time.Duration
	output     string
	// consistent is --consistent, which only read commands have.
	consistent bool
	// hostMetrics is the agent's latest host metrics sample for
	// `agents show`, or nil with hostMetricsWhy saying why.
	hostMetrics    *turbulencev1.HostMetricsSample
	hostMetricsWhy string
	// livenessUnknown is set when no leader answered an agents read:
	// CONNECTED is then shown as unknown (liveness.go).
	livenessUnknown bool
	// probeMembers makes cluster ls check that each node answers.
	probeMembers bool
	// probed is set once a failed call has been followed by a bare TLS
	// handshake (probeTLS): one is enough per run.
	probed bool
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "turbctl",
		Short: "Drive a Turbulence fault-injection fleet",
		Long: `turbctl drives a Turbulence fleet through a controller's gRPC API, over
mutual TLS only: list agents, apply and revert faults, halt and resume the
whole fleet, and follow the event log.

Global flags fall back to the environment: TURBCTL_CONTROLLER, TURBCTL_CA,
TURBCTL_CERT, TURBCTL_KEY.

Any controller of the cluster answers. Writes are forwarded to the leader.
Reads (agents ls/show, fault ls/show, audit ls, cluster ls, status,
events) are served from the replicated state of the controller asked,
which may lag the leader by a moment; with --consistent a read goes
through the leader instead and sees every write acknowledged before it.

` + exitCodesHelp,
		SilenceErrors:     true,
		SilenceUsage:      true,
		PersistentPreRunE: a.prepare,
		Args:              noSubcommand,
		RunE:              missingSubcommand,
	}
	root.CompletionOptions.DisableDefaultCmd = true
	// --version: cobra answers it before any flag check or dial.
	root.Version = version.String()
	root.SetVersionTemplate(version.Line("turbctl") + "\n")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		// A value that does not parse as its flag's type (--load abc,
		// --duration 5x) is invalid input; the rest is usage.
		var bad *pflag.InvalidValueError
		if errors.As(err, &bad) {
			return &invalidError{err: err, cmd: cmd.CommandPath()}
		}
		return &usageError{err: err, cmd: cmd.CommandPath()}
	})

	f := root.PersistentFlags()
	f.StringVar(&a.controller, "controller", DefaultController, "controller address host:port (env "+EnvController+")")
	f.StringVar(&a.tls.CA, "ca", "", "CA certificate file, PEM (env "+EnvCA+")")
	f.StringVar(&a.tls.Cert, "cert", "", "client certificate file, PEM (env "+EnvCert+")")
	f.StringVar(&a.tls.Key, "key", "", "client key file, PEM (env "+EnvKey+")")
	f.StringVar(&a.serverName, "tls-server-name", "", "name to verify in the controller's certificate (default: the host of --controller)")
	f.DurationVar(&a.timeout, "timeout", DefaultTimeout, "deadline of each call to the controller")
	f.StringVarP(&a.output, "output", "o", "table", "output format: table or json")

	root.AddCommand(a.agentsCommand(), a.faultCommand(), a.haltCommand(), a.resumeCommand(),
		a.statusCommand(), a.eventsCommand())
	root.AddCommand(a.auditCommand())
	root.AddCommand(a.tlsCommand())
	root.AddCommand(a.clusterCommand())
	root.AddCommand(a.experimentCommand())
	return root
}

// prepare fills unset global flags from the environment and checks them.
func (a *app) prepare(cmd *cobra.Command, _ []string) error {
	if err := a.prepareFlags(cmd); err != nil {
		var ue *usageError
		if errors.As(err, &ue) && ue.cmd == "" {
			ue.cmd = cmd.CommandPath()
		}
		return err
	}
	return nil
}

func (a *app) prepareFlags(cmd *cobra.Command) error {
	f := cmd.Flags()
	for _, fe := range []struct {
		flag, env string
		dst       *string
	}{
		{"controller", EnvController, &a.controller},
		{"ca", EnvCA, &a.tls.CA},
		{"cert", EnvCert, &a.tls.Cert},
		{"key", EnvKey, &a.tls.Key},
	} {
		if !f.Changed(fe.flag) {
			if v := a.env.getenv(fe.env); v != "" {
				*fe.dst = v
			}
		}
	}
	switch {
	case a.output == "table", a.output == "json":
	case (a.output == "text" || a.output == "html") && cmd.Annotations[annotationReportFormats] == "true":
		// experiment report renders the report package's text and HTML.
	default:
		return invalidf("-o/--output must be table or json (experiment report also takes text and html), got %q", a.output)
	}
	if a.timeout <= 0 {
		return invalidf("--timeout must be positive, got %s", a.timeout)
	}
	if a.controller == "" {
		return invalidf("--controller must not be empty")
	}
	return nil
}

// annotationReportFormats marks a command that also takes -o text and
// -o html (experiment report).
const annotationReportFormats = "report-formats"

// json reports whether -o json was asked for.
func (a *app) json() bool { return a.output == "json" }

// runE adapts a command body so that its errors are told apart from
// cobra's usage errors.
func runE(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := fn(cmd, args)
		if err == nil {
			return nil
		}
		var ue *usageError
		if errors.As(err, &ue) {
			if ue.cmd == "" {
				ue.cmd = cmd.CommandPath()
			}
			return err
		}
		var ie *invalidError
		if errors.As(err, &ie) {
			if ie.cmd == "" {
				ie.cmd = cmd.CommandPath()
			}
			return err
		}
		return &runError{err}
	}
}

// noSubcommand rejects stray arguments to a command group.
func noSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return &usageError{err: fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath()), cmd: cmd.CommandPath()}
	}
	return nil
}

// missingSubcommand is the body of a command group run on its own.
func missingSubcommand(cmd *cobra.Command, _ []string) error {
	return &usageError{err: fmt.Errorf("%s needs a subcommand", cmd.CommandPath()), cmd: cmd.CommandPath()}
}

// exactArgs is cobra.ExactArgs with names for the message.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == len(names) {
			return nil
		}
		var err error
		if len(names) == 0 {
			err = fmt.Errorf("%s takes no arguments, got %q", cmd.CommandPath(), args)
		} else {
			err = fmt.Errorf("%s takes %d argument(s) (%s), got %d", cmd.CommandPath(), len(names), strings.Join(names, " "), len(args))
		}
		return &usageError{err: err, cmd: cmd.CommandPath()}
	}
}

// newRequestID returns a random UUID (version 4) used as an idempotency
// key for one mutating command.
func newRequestID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return fmt.Sprintf("%s-%s-%s-%s-%s", h[0:8], h[8:12], h[12:16], h[16:20], h[20:32])
}
