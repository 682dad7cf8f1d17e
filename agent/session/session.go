package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/turbulence-sre/turbulence/agent/inject"
	"github.com/turbulence-sre/turbulence/agent/killswitch"
	"github.com/turbulence-sre/turbulence/internal/backoff"
	"github.com/turbulence-sre/turbulence/internal/limits"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Defaults of Config.
const (
	DefaultBackoffMin        = backoff.DefaultMin
	DefaultBackoffMax        = backoff.DefaultMax
	DefaultHeartbeatInterval = time.Second
	DefaultWelcomeTimeout    = 10 * time.Second
	// KeepaliveInterval is the HTTP/2 ping interval. Controllers must allow
	// it (keepalive.EnforcementPolicy{MinTime <= 10s}).
	KeepaliveInterval = 10 * time.Second
	// minHeartbeatInterval guards against a controller asking for a flood.
	minHeartbeatInterval = 10 * time.Millisecond
	// maxRedirectsInARow is the hop limit for Redirect chains without a
	// Welcome (docs/style.md, loops and retries: tailscale's loop has none); after it, back off.
	maxRedirectsInARow = 3
)

// Config is what a Session needs.
type Config struct {
	// Controllers are host:port addresses, dialled in turn.
	Controllers []string
	// TLS is the agent's certificate, key and CA.
	TLS tlsutil.Files
	// ServerName, when set, is checked in the controllers' certificates
	// instead of the host of each address dialled.
	ServerName string
	// AgentID is the name in the agent's certificate.
	AgentID string
	Labels  map[string]string
	Facts   *turbulencev1.HostFacts
	// KernelFeatures are the kernel's probed features (sch_netem, …),
	// reported in Hello so the controller can refuse what the host lacks.
	KernelFeatures []string
	// AllowedKinds, when not nil, are the fault kinds the host's local
	// policy accepts: Hello advertises only the kinds the agent can apply
	// AND its policy allows, so the controller does not offer the fleet
	// a kind this agent would refuse anyway (invariant 4).
	AllowedKinds []string
	Manager      *inject.Manager
	Lease        *killswitch.Lease
	Logger       *slog.Logger

	// HostMetrics, when not nil, supplies the host metrics sample each
	// heartbeat carries (agent/hostmetrics): the heartbeat copies the
	// latest sample and never waits for one. The session tells it the
	// heartbeat interval each Welcome asks for.
	HostMetrics HostMetrics

	// OnOpen, if set, is called each time a leader welcomes a session
	// (the agent counts reconnects with it).
	OnOpen func()

	// Dialer, when not nil, opens the TCP connection to a controller
	// address instead of the system's default dialer. The agent leaves it
	// nil; test/fleetsim gives each simulated agent its own loopback
	// source address with it, so that thousands of agents in one process
	// look like thousands of hosts to the controller's per-source
	// connection cap (docs/security.md).
	Dialer func(ctx context.Context, addr string) (net.Conn, error)

	// Zero means the default.
	BackoffMin, BackoffMax time.Duration
	WelcomeTimeout         time.Duration
}

// HostMetrics is the source of the heartbeats' host metrics;
// *hostmetrics.Sampler is one.
type HostMetrics interface {
	// Latest returns the latest sample, nil if none yet; the caller
	// owns it.
	Latest() *turbulencev1.HostMetrics
	// SetInterval follows the heartbeat interval.
	SetInterval(time.Duration)
}

// Session is the agent's connection to the controllers.
type Session struct {
	cfg   Config
	log   *slog.Logger
	creds credentials.TransportCredentials
	// cert is the agent's certificate source behind creds; hello reports
	// its expiry.
	cert  *tlsutil.Reloader
	flush chan flushReq
	// closing stops Run from reconnecting once Close was called.
	closing atomic.Bool
	// open is true while a welcomed session runs, so that Flush and Close
	// do not wait for a session that is not there.
	open atomic.Bool
	// controller is the address of the controller of the open session,
	// for the local status command; nil when none is open.
	controller atomic.Pointer[string]
}

// ErrNoSession is returned by Flush and Close when no session is open.
var ErrNoSession = errors.New("no open controller session")

// flushReq asks the sender for a heartbeat now; final also half-closes the
// stream and ends the session.
type flushReq struct {
	final bool
	done  chan error
}

// New checks cfg and loads the TLS material.
func New(cfg Config) (*Session, error) {
	if len(cfg.Controllers) == 0 {
		return nil, errors.New("session: at least one controller address is required")
	}
	if cfg.Manager == nil || cfg.Lease == nil || cfg.Logger == nil {
		return nil, errors.New("session: Manager, Lease and Logger are required")
	}
	// The certificate is re-read when its files change (rotation without
	// a restart) and an expiry within 14 days is logged.
	cert, err := tlsutil.NewReloader(cfg.TLS, tlsutil.WithLogger(cfg.Logger))
	if err != nil {
		return nil, fmt.Errorf("session: TLS: %w", err)
	}
	tc := cert.ClientConfig(cfg.ServerName)
	// Only a controller may command this agent: any certificate of the
	// fleet chains to the CA, so the role is checked too (issue 13, an
	// agent obeyed an operator certificate posing as a controller).
	tc.VerifyConnection = tlsutil.RequirePeerRole(tlsutil.RoleController)
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = DefaultBackoffMin
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = DefaultBackoffMax
	}
	if cfg.WelcomeTimeout <= 0 {
		cfg.WelcomeTimeout = DefaultWelcomeTimeout
	}
	return &Session{
		cfg:   cfg,
		log:   cfg.Logger.With("component", "session"),
		creds: credentials.NewTLS(tc),
		cert:  cert,
		flush: make(chan flushReq),
	}, nil
}

// Run keeps a session open to the controller leader until ctx is done. It
// returns nil then; it never gives up before.
//
// It goes round the configured controllers, following a follower's
// Redirect to the leader at once, and backs off only after a whole round
// found no leader. A Redirect to an address that already failed in this
// round is not followed: after a leader dies, followers keep naming it
// until their own election timeout, and an agent that went back to it
// each time would spend its lease on a dead address (invariant 2: a
// failover shorter than the lease must revert nothing).
func (s *Session) Run(ctx context.Context) error {
	bo := backoff.Backoff{Min: s.cfg.BackoffMin, Max: s.cfg.BackoffMax}
	n := len(s.cfg.Controllers)
	var (
		i         int                 // next configured address
		next      string              // a leader to dial at once, from a Redirect
		redirects int                 // Redirects followed in a row
		tried     int                 // configured addresses dialled this round
		failed    = map[string]bool{} // addresses that failed this round
	)
	for ctx.Err() == nil && !s.closing.Load() {
		addr := next
		if addr == "" {
			addr = s.cfg.Controllers[i%n]
			i++
			tried++
		}
		next = ""
		welcomed, redirect, err := s.connect(ctx, addr)
		if ctx.Err() != nil || s.closing.Load() {
			return nil
		}
		if welcomed {
			// A session ran: whatever ended it, start a fresh round.
			bo.Reset()
			redirects, tried = 0, 0
			clear(failed)
		}
		switch {
		case redirect != "" && failed[redirect]:
			s.log.Info("not following a redirect to a leader that failed moments ago", "controller", addr, "leader", redirect)
		case redirect != "":
			s.log.Info("redirected to the leader", "controller", addr, "leader", redirect)
			if redirects++; redirects <= maxRedirectsInARow {
				next = redirect
				continue // dial the leader at once
			}
			redirects = 0
		case err != nil:
			s.log.Warn("controller session failed", "controller", addr, "err", err)
			failed[addr] = true
		}
		if tried < n && !welcomed {
			continue // the next configured controller at once
		}
		// A whole round found no leader, or a session just ended: wait
		// before the next attempt (the shortest wait after a session), so
		// that a controller that welcomes and drops the agent at once
		// cannot make it spin. After a session, failed keeps the address
		// that just failed (a dead leader followers may still name).
		if !welcomed {
			tried = 0
			clear(failed)
		}
		wait := time.NewTimer(bo.Next())
		select {
		case <-ctx.Done():
			wait.Stop()
			return nil
		case <-wait.C:
		}
	}
	return nil
}

// Controller returns the address of the controller this agent has an open
// session with, or "" when it has none.
func (s *Session) Controller() string {
	if p := s.controller.Load(); p != nil {
		return *p
	}
	return ""
}

// Flush sends a heartbeat now if a session is open, and returns once it
// was sent.
func (s *Session) Flush(ctx context.Context) error {
	return s.request(ctx, false)
}

// Close sends one last heartbeat if a session is open, half-closes the
// stream and waits until the controller has closed its side, so that the
// heartbeat is delivered rather than cut off by a reset (protocol §9). Run
// returns after Close without reconnecting. Cancel Run's context after.
func (s *Session) Close(ctx context.Context) error {
	s.closing.Store(true)
	return s.request(ctx, true)
}

func (s *Session) request(ctx context.Context, final bool) error {
	if !s.open.Load() {
		return ErrNoSession
	}
	req := flushReq{final: final, done: make(chan error, 1)}
	select {
	case s.flush <- req:
	case <-ctx.Done():
		return fmt.Errorf("no open session: %w", ctx.Err())
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// redirectError ends a session whose controller named another leader.
type redirectError struct{ leader string }

func (e *redirectError) Error() string { return "redirected to " + e.leader }

// sessionWindow is the session's fixed HTTP/2 flow-control window: room
// for a burst of commands (an ApplyFault carries a whole fault) without
// a window update each.
const sessionWindow = 256 << 10

// stream is the client side of Connect.
type stream = grpc.BidiStreamingClient[turbulencev1.AgentMessage, turbulencev1.ControllerMessage]

// connect runs one session with addr until it fails or ctx is done.
func (s *Session) connect(ctx context.Context, addr string) (welcomed bool, redirect string, err error) {
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(s.creds),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: KeepaliveInterval, Timeout: KeepaliveInterval, PermitWithoutStream: true}),
		// The session is a trickle of small messages: no read buffer of
		// gRPC's own (TLS buffers records), and fixed windows, which turn off gRPC's
		// bandwidth estimator and the ping and ack it would add to every
		// heartbeat (docs/benchmarks.md).
		grpc.WithReadBufferSize(0),
		grpc.WithInitialWindowSize(sessionWindow),
		grpc.WithInitialConnWindowSize(sessionWindow),
	}
	if s.cfg.Dialer != nil {
		opts = append(opts, grpc.WithContextDialer(s.cfg.Dialer))
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return false, "", err
	}
	defer func() { _ = conn.Close() }()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := turbulencev1.NewAgentServiceClient(conn).Connect(sctx)
	if err != nil {
		return false, "", err
	}
	hello := &turbulencev1.AgentMessage{Msg: &turbulencev1.AgentMessage_Hello{Hello: s.hello()}}
	limits.Fit(hello)
	if err := st.Send(hello); err != nil {
		return false, "", fmt.Errorf("send hello: %w", err)
	}
	// A per-step deadline: a controller that accepts the stream but never
	// answers must not hold the agent forever.
	timeout := time.AfterFunc(s.cfg.WelcomeTimeout, cancel)
	first, err := st.Recv()
	if !timeout.Stop() {
		return false, "", fmt.Errorf("no welcome within %s", s.cfg.WelcomeTimeout)
	}
	if err != nil {
		return false, "", fmt.Errorf("wait for welcome: %w", err)
	}
	var interval time.Duration
	switch m := first.GetMsg().(type) {
	case *turbulencev1.ControllerMessage_Redirect:
		// Invariant 2: a Redirect comes from a follower, which renews no
		// lease; an agent bounced between followers while the leader is
		// out of its reach must still revert at lease expiry (protocol §6).
		if m.Redirect.GetLeaderAddress() == "" {
			return false, "", errors.New("redirect without a leader address (no leader elected?)")
		}
		return false, m.Redirect.GetLeaderAddress(), nil
	case *turbulencev1.ControllerMessage_Welcome:
		s.cfg.Lease.Renew(0) // any leader message renews (protocol §6)
		interval = s.welcome(m.Welcome)
	default:
		return false, "", fmt.Errorf("expected Welcome, got %T", m)
	}
	s.log.Info("session open", "controller", addr, "heartbeat_interval", interval, "lease_ttl", s.cfg.Lease.TTL())
	if s.cfg.OnOpen != nil {
		s.cfg.OnOpen()
	}

	out := make(chan *turbulencev1.AgentMessage, 64)
	cmds := make(chan *turbulencev1.ControllerMessage, 64)
	pace := make(chan time.Duration, 1)
	var (
		wg       sync.WaitGroup
		recvErr  error
		recvDone = make(chan struct{})
	)
	wg.Go(func() {
		defer close(recvDone)
		recvErr = s.receive(sctx, st, cmds, pace)
		cancel()
	})
	wg.Go(func() { s.handle(sctx, cmds, out) })
	s.controller.Store(&addr)
	s.open.Store(true)
	final, sendErr := s.send(sctx, st, out, interval, pace)
	s.open.Store(false)
	s.controller.Store(nil)
	if final != nil {
		// The stream is half-closed: wait for the controller to end it, so
		// the last heartbeat is read before the connection goes.
		select {
		case <-recvDone:
		case <-sctx.Done():
		}
		final.done <- sendErr
	}
	cancel()
	wg.Wait()
	if re, ok := errors.AsType[*redirectError](recvErr); ok {
		return true, re.leader, nil
	}
	if ctx.Err() != nil {
		return true, "", nil
	}
	return true, "", errors.Join(recvErr, sendErr)
}

// welcome applies a Welcome and returns the heartbeat interval.
func (s *Session) welcome(w *turbulencev1.Welcome) time.Duration {
	if d := w.GetLeaseTtl(); d.IsValid() && d.AsDuration() > 0 {
		s.cfg.Lease.Renew(d.AsDuration())
	}
	interval := DefaultHeartbeatInterval
	if d := w.GetHeartbeatInterval(); d.IsValid() && d.AsDuration() > 0 {
		interval = s.heartbeatInterval(d.AsDuration())
	}
	if s.cfg.HostMetrics != nil {
		s.cfg.HostMetrics.SetInterval(interval)
	}
	// Welcome.halted halts an agent that connects during a fleet halt
	// (invariant 5); false lifts a halt that ended while we were away.
	if w.GetHalted() {
		s.cfg.Manager.Halt()
	} else {
		s.cfg.Manager.Resume()
	}
	return interval
}

// faultKinds are the kinds Hello advertises: those with an injector,
// less those the local policy forbids, sorted.
func (s *Session) faultKinds() []string {
	kinds := s.cfg.Manager.Kinds()
	if s.cfg.AllowedKinds == nil {
		return kinds
	}
	return slices.DeleteFunc(kinds, func(k string) bool { return !slices.Contains(s.cfg.AllowedKinds, k) })
}

func (s *Session) hello() *turbulencev1.Hello {
	// The certificate's expiry, as of the handshake that opened this
	// session, so that `turbctl agents show` warns before the agent is
	// locked out (the controller checks it against the certificate).
	facts := &turbulencev1.HostFacts{}
	if s.cfg.Facts != nil {
		facts = proto.CloneOf(s.cfg.Facts)
	}
	facts.CertNotAfter = timestamppb.New(s.cert.NotAfter())
	// A local halt ordered while no controller was reachable reaches the
	// fleet view with the first message of the next session (invariant 5).
	return &turbulencev1.Hello{
		AgentId:       s.cfg.AgentID,
		Labels:        s.cfg.Labels,
		Facts:         facts,
		Capabilities:  &turbulencev1.Capabilities{FaultKinds: s.faultKinds(), KernelFeatures: s.cfg.KernelFeatures},
		Faults:        s.cfg.Manager.Held(),
		LocallyHalted: s.cfg.Manager.LocallyHalted(),
	}
}
