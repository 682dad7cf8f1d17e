package agent

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/turbulence-sre/turbulence/agent/guardian"
	"github.com/turbulence-sre/turbulence/agent/hostinfo"
	"github.com/turbulence-sre/turbulence/agent/hostmetrics"
	"github.com/turbulence-sre/turbulence/agent/inject"
	"github.com/turbulence-sre/turbulence/agent/killswitch"
	"github.com/turbulence-sre/turbulence/agent/leasefile"
	"github.com/turbulence-sre/turbulence/agent/policy"
	"github.com/turbulence-sre/turbulence/agent/session"
	"github.com/turbulence-sre/turbulence/internal/limits"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	"github.com/turbulence-sre/turbulence/internal/version"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Version is the agent's version, reported in HostFacts at Hello: the
// binary's own build information (internal/version).
var Version = version.String()

// finalHeartbeatTimeout bounds the best-effort last heartbeat at shutdown.
const finalHeartbeatTimeout = 2 * time.Second

// Config is what an agent needs to run.
type Config struct {
	// Controllers are the controllers' host:port addresses, dialled in turn.
	Controllers []string
	// TLS names the agent's CA, certificate and key. The name in the
	// certificate is the agent ID.
	TLS tlsutil.Files
	// TLSServerName, when set, is the name checked in every controller's
	// certificate instead of the host of the address dialled: for a
	// controller reached by an address its certificate does not name
	// (NAT, a VM's forwarded port).
	TLSServerName string
	// StateDir holds the agent's local state: the journal (required).
	StateDir string
	// PolicyPath is the local policy file; "" reads policy.DefaultPath if
	// it exists. Policy, when set, is used instead of any file.
	PolicyPath string
	Policy     *policy.Policy
	// Labels are sent in Hello; the controller selects targets by them
	// (docs/selectors.md). LabelsFile, when set, is a YAML map of labels;
	// Labels override its entries. New refuses labels that break the
	// bounds or the label syntax.
	Labels     map[string]string
	LabelsFile string
	// WorkerBinary is re-executed in worker mode; default os.Executable().
	WorkerBinary string
	// Logger defaults to a logger that discards.
	Logger *slog.Logger
	// ProcRoot is where /proc is mounted; default "/proc".
	ProcRoot string
	// MetricsPaths are paths whose filesystems' usage the heartbeats
	// report, besides the state directory's (agent/hostmetrics); at
	// most limits.MaxWatchedFilesystems in all.
	MetricsPaths []string
	// LocalSocket is the path of the operator's unix socket (status, halt,
	// resume; agent/localapi); "" means localapi.DefaultPath and
	// LocalSocketDisabled serves none (tests only).
	LocalSocket string
	// MetricsAddr, host:port, serves Prometheus metrics on GET /metrics
	// (agent/metrics.go); "" (the default) opens no TCP port at all.
	MetricsAddr string

	// NetNS, when not zero, is an open network namespace (a file
	// descriptor) in which the network and partition faults are applied
	// instead of the agent's own: a test gives a real agent a namespace it
	// made, so that a fault's effect and its end can be watched without
	// touching the host's network; such an agent starts no guardians.
	// Zero, the default, is the namespace the agent runs in.
	NetNS int

	// Notify is told when the agent is ready, when each pass of its
	// enforcement loop is done and when it begins to stop: systemd's
	// sd_notify in the binary (internal/sdnotify). Nil tells no one.
	Notify Notifier
	// EnforceInterval is how often the enforcement loop runs
	// (killswitch.Enforce) and so how often Notify.Watchdog is called;
	// zero means one second.
	EnforceInterval time.Duration

	// Session tuning, zero for the defaults (tests shorten them).
	BackoffMin, BackoffMax time.Duration
	// RecoveryRetry is the first wait before start-up recovery, when it
	// was incomplete, runs again; it doubles up to two minutes. Zero means
	// five seconds (tests shorten it).
	RecoveryRetry time.Duration
}

// Notifier is told of the agent's life cycle; *sdnotify.Notifier is one.
type Notifier interface {
	// Ready: start-up recovery and the sweep are done, the local socket
	// is served, and the agent goes on to take faults.
	Ready()
	// Watchdog: one pass of the enforcement loop is done.
	Watchdog()
	// Stopping: the agent is reverting every fault before it exits.
	Stopping()
}

// nopNotifier is the Notifier of a Config that names none.
type nopNotifier struct{}

func (nopNotifier) Ready()    {}
func (nopNotifier) Watchdog() {}
func (nopNotifier) Stopping() {}

// defaultEnforceInterval is how often the enforcement loop runs unless
// Config.EnforceInterval says otherwise.
const defaultEnforceInterval = time.Second

// Agent is a configured agent. Run it once.
type Agent struct {
	cfg     Config
	id      string
	log     *slog.Logger
	owner   inject.Owner
	kinds   []inject.Kind
	manager *inject.Manager
	policy  policy.Policy // as enforced, with the controllers protected
	// metrics counts applies, ends and reconnects (metrics.go).
	metrics *agentMetrics
	// metricsAddr is the bound metrics address once Run serves it.
	metricsAddr atomic.Pointer[string]
	// foreign lists the marks start-up recovery found and left because
	// they are not this agent's (invariant 7), for the local status.
	foreign atomic.Pointer[[]string]
}

// New checks cfg, reads the agent ID from the certificate and builds the
// agent. It starts nothing.
func New(cfg Config) (*Agent, error) {
	if len(cfg.Controllers) == 0 {
		return nil, errors.New("at least one controller address is required")
	}
	cfg, err := withDefaults(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Labels, err = loadLabels(cfg.LabelsFile, cfg.Labels); err != nil {
		return nil, err
	}
	pol, err := loadPolicy(cfg)
	if err != nil {
		return nil, err
	}
	id, err := certIdentity(cfg.TLS.Cert)
	if err != nil {
		return nil, err
	}
	if id.Role != tlsutil.RoleAgent {
		return nil, fmt.Errorf("certificate %s is for role %q, want %q", cfg.TLS.Cert, id.Role, tlsutil.RoleAgent)
	}
	if cfg.StateDir == "" {
		return nil, errors.New("a state directory is required: the journal lives there")
	}
	if err := checkMetricsPaths(cfg.MetricsPaths); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	owner := inject.NewOwner(id.Name, cfg.StateDir)
	ks := kinds(cfg, owner, pol)
	injectors := make([]inject.Injector, len(ks))
	for i, k := range ks {
		injectors[i] = k
	}
	a := &Agent{
		cfg:     cfg,
		id:      id.Name,
		log:     cfg.Logger.With("agent_id", id.Name),
		owner:   owner,
		kinds:   ks,
		manager: inject.NewManager(cfg.Logger, injectors...),
	}
	a.metrics = newAgentMetrics(a.manager.Kinds())
	a.manager.Observe(a.metrics)
	facts := hostinfo.Facts(cfg.ProcRoot, Version)
	pol = a.protectControllers(pol)
	a.policy = pol
	a.manager.UsePolicy(pol, policy.Host{TotalMemoryBytes: facts.GetMemoryBytes(), CPUs: facts.GetCpus()})
	return a, nil
}

// checkMetricsPaths refuses watched filesystem paths the heartbeat could
// not carry: the state directory's filesystem takes one of the
// limits.MaxWatchedFilesystems places.
func checkMetricsPaths(paths []string) error {
	if n, most := len(paths), limits.MaxWatchedFilesystems-1; n > most {
		return fmt.Errorf("metrics paths (--watch-fs): %d given, at most %d besides the state directory", n, most)
	}
	for _, p := range paths {
		if !filepath.IsAbs(p) || len(p) > limits.MaxPathLen {
			return fmt.Errorf("metrics paths (--watch-fs): %q must be an absolute path of at most %d bytes", p, limits.MaxPathLen)
		}
	}
	return nil
}

// withDefaults fills in cfg's defaults: logger, /proc, the worker binary.
func withDefaults(cfg Config) (Config, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	if cfg.Notify == nil {
		cfg.Notify = nopNotifier{}
	}
	if cfg.EnforceInterval <= 0 {
		cfg.EnforceInterval = defaultEnforceInterval
	}
	if cfg.WorkerBinary == "" {
		exe, err := os.Executable()
		if err != nil {
			return cfg, fmt.Errorf("find own executable for workers: %w", err)
		}
		cfg.WorkerBinary = exe
	}
	return cfg, nil
}

// loadPolicy returns cfg.Policy, or the file at cfg.PolicyPath, or the
// file at policy.DefaultPath if it exists, or the defaults.
func loadPolicy(cfg Config) (policy.Policy, error) {
	if cfg.Policy != nil {
		if err := cfg.Policy.Validate(); err != nil {
			return policy.Policy{}, fmt.Errorf("agent policy: %w", err)
		}
		return *cfg.Policy, nil
	}
	if cfg.PolicyPath != "" {
		return policy.Load(cfg.PolicyPath, false)
	}
	return policy.Load(policy.DefaultPath, true)
}

// ID returns the agent ID: the name in its certificate.
func (a *Agent) ID() string { return a.id }

// Faults returns the status of every held fault, then of the faults that
// ended recently.
func (a *Agent) Faults() []*turbulencev1.FaultStatus { return a.manager.Faults() }

// Run keeps a session with the controllers until ctx is done, then reverts
// every fault and returns once every worker has been waited for. It first
// takes back what an earlier run left (the journal, then the sweep). It
// returns an error only if the journal or the session could not be set up.
func (a *Agent) Run(ctx context.Context) error {
	// Invariant 3: before anything new is applied, take back whatever an
	// earlier run left, and record every fault from here on.
	j, rec, err := recoverHost(a.log, a.cfg, a.owner, a.kinds, ReasonRecovered, nil)
	if j == nil {
		return err
	}
	a.foreign.Store(&rec.Foreign)
	defer func() {
		if err := j.Close(); err != nil {
			a.log.Error("close journal", "err", err)
		}
	}()
	a.manager.UseJournal(j)
	// Invariant 3: faults without a worker get a guardian that outlives
	// the agent (agent/guardian). Not for a test's agent that applies its
	// network faults in another namespace (Config.NetNS): its guardians,
	// processes in the agent's own namespace, could not reach them.
	if a.cfg.NetNS == 0 {
		a.manager.UseGuardians(guardian.Starter{Binary: a.cfg.WorkerBinary, StateDir: a.owner.StateDir})
	}
	// What cleanup took back after the last run stopped is reported with
	// what start-up took back; its file goes once the Manager has them.
	reverted, reported := takeUnreported(a.log, a.cfg.StateDir, rec.Reverted)
	a.manager.RecordRecovered(reverted)
	reported()
	if err != nil {
		// The agent still starts, so that the fleet sees it and its kill
		// switch runs, but it takes no new fault until what is left is
		// gone; the journal keeps it for the next start too.
		a.log.Error("start-up recovery incomplete: new faults are refused until it completes", "err", err)
		a.manager.SetUnrecovered(err)
		retryCtx, stopRetry := context.WithCancel(ctx)
		retried := make(chan struct{})
		go func() {
			defer close(retried)
			a.retryRecovery(retryCtx, j)
		}()
		defer func() { stopRetry(); <-retried }()
	}

	// The lease's end is written for the guardians at every renewal.
	lease := killswitch.NewLease(a.log, a.manager, killswitch.WithExpiryRecorder(func(expiry time.Time) {
		if err := leasefile.Write(a.owner.StateDir, expiry); err != nil {
			a.log.Warn("lease file for the guardians not written", "err", err)
		}
	}))
	// Host metrics are sampled on their own goroutine; heartbeats copy
	// the latest sample (agent/hostmetrics).
	sampler := hostmetrics.New(hostmetrics.Config{
		ProcRoot: a.cfg.ProcRoot,
		Paths:    append([]string{a.cfg.StateDir}, a.cfg.MetricsPaths...),
		Logger:   a.log,
	})
	sampleCtx, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		_ = sampler.Run(sampleCtx)
	}()
	defer func() { stopSampling(); <-sampled }()
	sess, err := session.New(session.Config{
		Controllers: a.cfg.Controllers,
		TLS:         a.cfg.TLS,
		ServerName:  a.cfg.TLSServerName,
		AgentID:     a.id,
		Labels:      a.cfg.Labels,
		Facts:       hostinfo.Facts(a.cfg.ProcRoot, Version),
		// Probed once per start: modules are loaded at boot, not mid-run.
		KernelFeatures: hostinfo.KernelFeatures(),
		AllowedKinds:   append([]string{}, a.policy.AllowedKinds...), // never nil: nil would mean "all"
		Manager:        a.manager,
		Lease:          lease,
		Logger:         a.log,
		BackoffMin:     a.cfg.BackoffMin,
		BackoffMax:     a.cfg.BackoffMax,
		OnOpen:         a.metrics.sessionOpened,
		HostMetrics:    sampler,
	})
	if err != nil {
		lease.Stop()
		return err
	}
	// Invariant 5: the local kill switch is served before the first dial
	// and needs no controller; an agent that cannot serve it does not run.
	stopLocal, err := a.startLocal(sess)
	if err != nil {
		lease.Stop()
		return err
	}
	defer stopLocal()
	stopMetrics, err := a.serveMetrics(ctx, sess)
	if err != nil {
		lease.Stop()
		return err
	}
	defer stopMetrics() // before stopLocal: both stay up through the revert
	a.log.Info("agent starting", "controllers", a.cfg.Controllers, "worker", a.cfg.WorkerBinary)

	// The session outlives ctx on purpose: it must still be open for the
	// last heartbeat after the faults are reverted.
	sessCtx, stopSession := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = sess.Run(sessCtx)
	}()
	// Recovery and the sweep are done and the kill switch is served: from
	// here on the agent takes faults (systemd's READY=1).
	a.cfg.Notify.Ready()
	// The enforcement loop feeds systemd's watchdog from its own passes
	// (agent/killswitch.Enforce): a stuck loop gets the agent restarted.
	enforced := make(chan struct{})
	go func() {
		defer close(enforced)
		killswitch.Enforce(ctx, a.cfg.EnforceInterval, a.manager, lease, a.cfg.Notify.Watchdog)
	}()
	testHooks(a)
	<-ctx.Done()

	a.log.Info("agent stopping: reverting every fault")
	a.cfg.Notify.Stopping()
	lease.Stop()
	// Invariant 3: stopping the service reverts everything before exit.
	a.manager.Close(inject.ReasonAgentStopping)
	<-enforced
	fctx, cancel := context.WithTimeout(context.Background(), finalHeartbeatTimeout)
	if err := sess.Close(fctx); err != nil {
		a.log.Warn("last heartbeat not sent", "err", err)
	}
	cancel()
	stopSession()
	<-done
	a.log.Info("agent stopped")
	return nil
}

// certIdentity reads the Turbulence identity from a PEM certificate file.
func certIdentity(path string) (tlsutil.Identity, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return tlsutil.Identity{}, fmt.Errorf("read certificate: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return tlsutil.Identity{}, fmt.Errorf("certificate %s holds no PEM certificate", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return tlsutil.Identity{}, fmt.Errorf("parse certificate %s: %w", path, err)
	}
	id, err := tlsutil.IdentityFromCert(cert)
	if err != nil {
		return tlsutil.Identity{}, fmt.Errorf("certificate %s: %w", path, err)
	}
	return id, nil
}
