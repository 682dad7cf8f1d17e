// Package fakecontroller is a tiny AgentService server for the agent's
// tests: real gRPC over real mutual TLS on a loopback port, with the
// controller's side of docs/protocol.md reduced to what a test drives by
// hand (it records what the agent sends and sends what the test asks).
package fakecontroller

import (
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Options shape the fake's answers.
type Options struct {
	// Welcome is sent after a valid Hello; nil means a lease TTL of 15 s
	// and a heartbeat interval of 100 ms.
	Welcome *turbulencev1.Welcome
	// RedirectTo, when set, answers every Hello with a Redirect to it.
	RedirectTo string
	// ServerCert, when set, is the certificate the fake serves instead of
	// the PKI's controller certificate (a rogue server's).
	ServerCert *tlsutil.Files
}

// Server is a running fake controller.
type Server struct {
	Addr string

	t      testing.TB
	opts   Options
	hellos chan *turbulencev1.Hello
	msgs   chan *turbulencev1.AgentMessage
	send   chan *turbulencev1.ControllerMessage
	drop   chan struct{}

	mu       sync.Mutex
	sessions int
	redirect string // Options.RedirectTo, changed by SetRedirect
}

// Start serves AgentService on 127.0.0.1 with the controller certificate
// of pki until the test ends.
func Start(t testing.TB, pki tlsutil.DevPKI, opts Options) *Server {
	t.Helper()
	serve := pki.Controller
	if opts.ServerCert != nil {
		serve = *opts.ServerCert
	}
	tc, err := tlsutil.ServerConfig(serve)
	if err != nil {
		t.Fatalf("fakecontroller: %v", err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("fakecontroller: listen: %v", err)
	}
	if opts.Welcome == nil {
		opts.Welcome = &turbulencev1.Welcome{
			LeaseTtl:          durationpb.New(15 * time.Second),
			HeartbeatInterval: durationpb.New(100 * time.Millisecond),
		}
	}
	s := &Server{
		Addr:   lis.Addr().String(),
		t:      t,
		opts:   opts,
		hellos: make(chan *turbulencev1.Hello, 16),
		msgs:   make(chan *turbulencev1.AgentMessage, 4096),
		send:   make(chan *turbulencev1.ControllerMessage, 16),
		drop:   make(chan struct{}),
	}
	s.redirect = opts.RedirectTo
	gs := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(tc)),
		// Agents ping every 10 s; the default policy (5 min) would GOAWAY them.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
	)
	turbulencev1.RegisterAgentServiceServer(gs, &service{s: s})
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return s
}

// Send queues a message for the agent's current (or next) session.
func (s *Server) Send(m *turbulencev1.ControllerMessage) { s.send <- m }

// DropSession ends the current session from the controller's side, as a
// controller crash or a leader change would.
func (s *Server) DropSession() { s.drop <- struct{}{} }

// SetRedirect makes every later Hello answered with a Redirect to addr
// ("" to welcome again), as a leader that stepped down would.
func (s *Server) SetRedirect(addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.redirect = addr
}

// DrainHellos discards the Hellos received so far, so that a test that
// lets an agent reconnect many times never blocks the fake on them.
func (s *Server) DrainHellos() {
	for {
		select {
		case <-s.hellos:
		default:
			return
		}
	}
}

// Sessions returns how many sessions got past Hello.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions
}

// WaitHello returns the next Hello, failing the test after timeout.
func (s *Server) WaitHello(timeout time.Duration) *turbulencev1.Hello {
	s.t.Helper()
	select {
	case h := <-s.hellos:
		return h
	case <-time.After(timeout):
		s.t.Fatalf("fakecontroller: no Hello within %s", timeout)
		return nil
	}
}

// WaitFor drains agent messages until match returns true for one, and
// returns it; it fails the test after timeout.
func (s *Server) WaitFor(timeout time.Duration, what string, match func(*turbulencev1.AgentMessage) bool) *turbulencev1.AgentMessage {
	s.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case m := <-s.msgs:
			if match(m) {
				return m
			}
		case <-deadline.C:
			s.t.Fatalf("fakecontroller: no %s within %s", what, timeout)
			return nil
		}
	}
}

type service struct {
	turbulencev1.UnimplementedAgentServiceServer
	s *Server
}

// Connect checks the caller as the real controller does (protocol §2),
// then relays messages both ways.
func (v *service) Connect(st grpc.BidiStreamingServer[turbulencev1.AgentMessage, turbulencev1.ControllerMessage]) error {
	s := v.s
	id, err := tlsutil.PeerIdentity(st.Context())
	if err != nil || id.Role != tlsutil.RoleAgent {
		return status.Errorf(codes.PermissionDenied, "not an agent: %v", err)
	}
	first, err := st.Recv()
	if err != nil {
		return err
	}
	hello := first.GetHello()
	if hello == nil {
		return status.Error(codes.InvalidArgument, "first message must be Hello")
	}
	if hello.GetAgentId() != id.Name {
		return status.Errorf(codes.PermissionDenied, "hello.agent_id %q is not the certificate name %q", hello.GetAgentId(), id.Name)
	}
	s.hellos <- hello
	s.mu.Lock()
	redirect := s.redirect
	if redirect == "" {
		s.sessions++
	}
	s.mu.Unlock()
	if redirect != "" {
		return st.Send(&turbulencev1.ControllerMessage{Msg: &turbulencev1.ControllerMessage_Redirect{Redirect: &turbulencev1.Redirect{LeaderAddress: redirect}}})
	}
	if err := st.Send(&turbulencev1.ControllerMessage{Msg: &turbulencev1.ControllerMessage_Welcome{Welcome: s.opts.Welcome}}); err != nil {
		return err
	}
	recvErr := make(chan error, 1)
	go func() {
		for {
			m, err := st.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case s.msgs <- m:
			case <-st.Context().Done():
				recvErr <- st.Context().Err()
				return
			}
		}
	}()
	for {
		select {
		case m := <-s.send:
			if err := st.Send(m); err != nil {
				return err
			}
		case err := <-recvErr:
			return err
		case <-s.drop:
			return status.Error(codes.Unavailable, "session dropped by the test")
		}
	}
}
