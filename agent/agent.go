package agent

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/turbulence-sre/turbulence/agent/hostinfo"
	"github.com/turbulence-sre/turbulence/agent/inject"
	"github.com/turbulence-sre/turbulence/agent/inject/cpu"
	"github.com/turbulence-sre/turbulence/agent/killswitch"
	"github.com/turbulence-sre/turbulence/agent/session"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Version is the agent's version, reported in HostFacts; set at link time.
var Version = "dev"

// finalHeartbeatTimeout bounds the best-effort last heartbeat at shutdown.
const finalHeartbeatTimeout = 2 * time.Second

// Config is what an agent needs to run.
type Config struct {
	// Controllers are the controllers' host:port addresses, dialled in turn.
	Controllers []string
	// TLS names the agent's CA, certificate and key. The name in the
	// certificate is the agent ID.
	TLS tlsutil.Files
	// StateDir holds the agent's local state (the journal, later).
	StateDir string
	// Labels are sent in Hello; the controller selects targets by them.
	Labels map[string]string
	// WorkerBinary is re-executed in worker mode; default os.Executable().
	WorkerBinary string
	// Logger defaults to a logger that discards.
	Logger *slog.Logger
	// ProcRoot is where /proc is mounted; default "/proc".
	ProcRoot string

	// Session tuning, zero for the defaults (tests shorten them).
	BackoffMin, BackoffMax time.Duration
}

// Agent is a configured agent. Run it once.
type Agent struct {
	cfg     Config
	id      string
	log     *slog.Logger
	manager *inject.Manager
}

// New checks cfg, reads the agent ID from the certificate and builds the
// agent. It starts nothing.
func New(cfg Config) (*Agent, error) {
	if len(cfg.Controllers) == 0 {
		return nil, errors.New("at least one controller address is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	if cfg.WorkerBinary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find own executable for workers: %w", err)
		}
		cfg.WorkerBinary = exe
	}
	id, err := certIdentity(cfg.TLS.Cert)
	if err != nil {
		return nil, err
	}
	if id.Role != tlsutil.RoleAgent {
		return nil, fmt.Errorf("certificate %s is for role %q, want %q", cfg.TLS.Cert, id.Role, tlsutil.RoleAgent)
	}
	if cfg.StateDir != "" {
		if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
			return nil, fmt.Errorf("state directory: %w", err)
		}
	}
	return &Agent{
		cfg:     cfg,
		id:      id.Name,
		log:     cfg.Logger.With("agent_id", id.Name),
		manager: inject.NewManager(cfg.Logger, cpu.New(cfg.WorkerBinary, cfg.ProcRoot)),
	}, nil
}

// ID returns the agent ID: the name in its certificate.
func (a *Agent) ID() string { return a.id }

// Faults returns the status of every held fault, then of the faults that
// ended recently.
func (a *Agent) Faults() []*turbulencev1.FaultStatus { return a.manager.Faults() }

// Run keeps a session with the controllers until ctx is done, then reverts
// every fault and returns once every worker has been waited for. It
// returns an error only if the session could not be set up.
func (a *Agent) Run(ctx context.Context) error {
	lease := killswitch.NewLease(a.log, a.manager)
	sess, err := session.New(session.Config{
		Controllers: a.cfg.Controllers,
		TLS:         a.cfg.TLS,
		AgentID:     a.id,
		Labels:      a.cfg.Labels,
		Facts:       hostinfo.Facts(a.cfg.ProcRoot, Version),
		Manager:     a.manager,
		Lease:       lease,
		Logger:      a.log,
		BackoffMin:  a.cfg.BackoffMin,
		BackoffMax:  a.cfg.BackoffMax,
	})
	if err != nil {
		lease.Stop()
		return err
	}
	a.log.Info("agent starting", "controllers", a.cfg.Controllers, "worker", a.cfg.WorkerBinary)

	// The session outlives ctx on purpose: it must still be open for the
	// last heartbeat after the faults are reverted.
	sessCtx, stopSession := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = sess.Run(sessCtx)
	}()
	<-ctx.Done()

	a.log.Info("agent stopping: reverting every fault")
	lease.Stop()
	// Invariant 3: stopping the service reverts everything before exit.
	a.manager.Close(inject.ReasonAgentStopping)
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
