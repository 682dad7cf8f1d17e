package fleetsim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/turbulence-sre/turbulence/agent/inject"
	"github.com/turbulence-sre/turbulence/agent/killswitch"
	"github.com/turbulence-sre/turbulence/agent/session"
	"github.com/turbulence-sre/turbulence/internal/faultspec"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// AgentConfig is one simulated agent.
type AgentConfig struct {
	// ID is the agent's name; its certificate (TLS) must carry it.
	ID string
	// Controllers are the controllers' gRPC addresses, dialled in turn.
	Controllers []string
	// TLS is the agent's CA, certificate and key files.
	TLS    tlsutil.Files
	Labels map[string]string
	Facts  *turbulencev1.HostFacts
	// Kinds are the fault kinds the agent advertises and accepts; nil
	// means every kind (faultspec.AllKinds).
	Kinds          []string
	KernelFeatures []string
	// SourceAddr, when not empty, is the loopback address the agent dials
	// from (see Config.SourceAddrs).
	SourceAddr string
	// Logger receives the agent's own log lines (its session's, its
	// Manager's); nil discards them.
	Logger *slog.Logger
	// notify is Fleet's index of receipts.
	notify func(Receipt)
}

// Agent is one simulated agent: the real agent's session, inject.Manager
// and lease watchdog (agent/session, agent/inject, agent/killswitch) over
// a recording injector instead of the host.
type Agent struct {
	id      string
	labels  map[string]string
	rec     *recorder
	manager *inject.Manager
	lease   *killswitch.Lease
	sess    *session.Session

	// attachedAt is when a leader first welcomed the agent, nil until
	// then; sessions counts the welcomed sessions (reconnects + 1).
	attachedAt atomic.Pointer[time.Time]
	// openedAt is when a leader welcomed its latest session.
	openedAt atomic.Pointer[time.Time]
	sessions atomic.Int64
	renewals atomic.Int64

	// gapMu guards the lease-gap measurement: lastRenew is the latest
	// renewal (zero before the first Welcome), maxGap the longest time
	// between two renewals since start or ResetLeaseGap.
	gapMu     sync.Mutex
	lastRenew time.Time
	maxGap    time.Duration

	cancel context.CancelFunc
	done   chan struct{}
	closed sync.Once
}

// StartAgent starts one simulated agent. It returns once the agent runs;
// its session opens in the background (Attached). Stop it with Close.
func StartAgent(cfg AgentConfig) (*Agent, error) {
	if err := tlsutil.ValidateName(cfg.ID); err != nil {
		return nil, fmt.Errorf("fleetsim: agent ID: %w", err)
	}
	if len(cfg.Controllers) == 0 {
		return nil, errors.New("fleetsim: field Controllers: at least one controller address is required")
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("agent_id", cfg.ID)
	kinds := cfg.Kinds
	if kinds == nil {
		kinds = faultspec.AllKinds
	}
	if err := checkKinds(kinds); err != nil {
		return nil, fmt.Errorf("fleetsim: agent %s: %w", cfg.ID, err)
	}
	a := &Agent{id: cfg.ID, labels: cfg.Labels, rec: newRecorder(cfg.ID, cfg.notify), done: make(chan struct{})}
	a.manager = inject.NewManager(logger, a.rec.injectors(kinds)...)
	// The lease is the agent's own (invariant 2). Its expiry recorder is
	// called at start and at every renewal: from the second call on, a
	// leader has spoken to this agent.
	a.lease = killswitch.NewLease(logger, a.manager, killswitch.WithExpiryRecorder(func(time.Time) {
		if a.renewals.Add(1) == 1 {
			return // NewLease's own call: no leader yet
		}
		a.renewed()
	}))
	scfg := session.Config{
		Controllers:    cfg.Controllers,
		TLS:            cfg.TLS,
		AgentID:        cfg.ID,
		Labels:         cfg.Labels,
		Facts:          cfg.Facts,
		KernelFeatures: cfg.KernelFeatures,
		AllowedKinds:   kinds,
		Manager:        a.manager,
		Lease:          a.lease,
		Logger:         logger,
		OnOpen:         a.opened,
	}
	if cfg.SourceAddr != "" {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(cfg.SourceAddr)}}
		scfg.Dialer = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	sess, err := session.New(scfg)
	if err != nil {
		a.lease.Stop()
		return nil, fmt.Errorf("fleetsim: agent %s: %w", cfg.ID, err)
	}
	a.sess = sess
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	go func() {
		defer close(a.done)
		_ = sess.Run(ctx)
	}()
	return a, nil
}

// checkKinds refuses a kind that is not a fault kind, naming the kinds.
func checkKinds(kinds []string) error {
	for _, k := range kinds {
		if !slices.Contains(faultspec.AllKinds, k) {
			return fmt.Errorf("field Kinds: unknown fault kind %q (the kinds are %s)", k, strings.Join(faultspec.AllKinds, ", "))
		}
	}
	return nil
}

// opened records a session welcomed by a leader.
func (a *Agent) opened() {
	now := time.Now()
	a.attachedAt.CompareAndSwap(nil, &now)
	a.openedAt.Store(&now)
	a.sessions.Add(1)
}

// renewed records a lease renewal: a message from a leader.
func (a *Agent) renewed() {
	now := time.Now()
	a.gapMu.Lock()
	defer a.gapMu.Unlock()
	if !a.lastRenew.IsZero() {
		a.maxGap = max(a.maxGap, now.Sub(a.lastRenew))
	}
	a.lastRenew = now
}

// MaxLeaseGap is the longest time the agent went without a lease renewal
// since its first Welcome or the last ResetLeaseGap, the time since the
// last renewal included. An agent whose lease TTL is shorter reverted its
// faults (invariant 2).
func (a *Agent) MaxLeaseGap() time.Duration {
	a.gapMu.Lock()
	defer a.gapMu.Unlock()
	if a.lastRenew.IsZero() {
		return a.maxGap
	}
	return max(a.maxGap, time.Since(a.lastRenew))
}

// ResetLeaseGap starts a new MaxLeaseGap measurement from now.
func (a *Agent) ResetLeaseGap() {
	a.gapMu.Lock()
	defer a.gapMu.Unlock()
	a.maxGap = 0
	if !a.lastRenew.IsZero() {
		a.lastRenew = time.Now()
	}
}

// ID is the agent's name.
func (a *Agent) ID() string { return a.id }

// Labels are the labels the agent reports at Hello. Do not modify.
func (a *Agent) Labels() map[string]string { return a.labels }

// Attached returns the address of the controller the agent has an open,
// welcomed session with, "" when it has none.
func (a *Agent) Attached() string { return a.sess.Controller() }

// AttachedAt is when a leader first welcomed the agent, zero until then.
func (a *Agent) AttachedAt() time.Time {
	if p := a.attachedAt.Load(); p != nil {
		return *p
	}
	return time.Time{}
}

// OpenedAt is when a leader welcomed the agent's latest session, zero
// until the first.
func (a *Agent) OpenedAt() time.Time {
	if p := a.openedAt.Load(); p != nil {
		return *p
	}
	return time.Time{}
}

// Sessions counts the sessions a leader welcomed: 1 for an agent that
// never had to reconnect.
func (a *Agent) Sessions() int64 { return a.sessions.Load() }

// LeaseRenewals counts the renewals of the agent's lease: every message
// from a leader renews it (docs/protocol.md §6).
func (a *Agent) LeaseRenewals() int64 { return max(a.renewals.Load()-1, 0) }

// LeaseExpired counts how often the agent's lease ran out, each time
// reverting every fault it held. Nonzero on a healthy controller means a
// false revert.
func (a *Agent) LeaseExpired() int { return a.lease.Expired() }

// Received returns when the agent's injector applied and reverted faultID;
// both are zero if the fault never reached it, revertAt is zero while it
// is held.
func (a *Agent) Received(faultID string) (applyAt, revertAt time.Time) {
	rc, _ := a.rec.receipt(faultID)
	return rc.AppliedAt, rc.RevertedAt
}

// Receipts returns everything the agent's injector recorded.
func (a *Agent) Receipts() []Receipt { return a.rec.all() }

// Faults returns the agent's view of its faults, held then ended, as its
// heartbeats report them (inject.Manager.Faults).
func (a *Agent) Faults() []*turbulencev1.FaultStatus { return a.manager.Faults() }

// Halted reports whether the agent is under a fleet halt.
func (a *Agent) Halted() bool { return a.manager.Halted() }

// Close stops the agent as the real agent stops: the lease watchdog off,
// every fault reverted (reason "agent stopping"), one last heartbeat if a
// session is open, then the session closed. ctx bounds the last
// heartbeat. Close is idempotent.
func (a *Agent) Close(ctx context.Context) {
	a.closed.Do(func() {
		a.lease.Stop()
		a.manager.Close(inject.ReasonAgentStopping)
		_ = a.sess.Close(ctx) // ErrNoSession: nothing to say goodbye to
		a.cancel()
		<-a.done
	})
}
