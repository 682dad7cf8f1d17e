package controllertest

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/turbulence-sre/turbulence/controller"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// AgentName is the agent ID in the PKI's agent certificate.
const AgentName = "test-agent"

// issuedValidity is the lifetime of certificates made by IssueCert.
const issuedValidity = 30 * 24 * time.Hour

// startTimeout bounds how long NewServer waits for leadership.
const startTimeout = 30 * time.Second

// Server is a running controller for a test.
type Server struct {
	// Controller is the running node.
	Controller *controller.Controller
	// Config is the configuration it was started with.
	Config controller.Config
	// PKI holds the CA and the controller, agent (named AgentName) and
	// admin certificates. IssueCert makes more.
	PKI tlsutil.DevPKI
	// Addr is the controller's gRPC address.
	Addr string
}

// NewServer starts a single-node controller, waits until it is the raft
// leader and stops it in t.Cleanup. configure, if not nil, may change the
// configuration before the controller is built.
func NewServer(t testing.TB, configure func(*controller.Config)) *Server {
	t.Helper()
	dir := t.TempDir()
	pki, err := tlsutil.EnsureDevPKI(filepath.Join(dir, "tls"), AgentName)
	if err != nil {
		t.Fatalf("dev PKI: %v", err)
	}
	cfg := controller.DefaultConfig()
	cfg.NodeID = "test-controller"
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.GRPCAddr = "127.0.0.1:0"
	cfg.RaftAddr = "127.0.0.1:0"
	cfg.TLS = pki.Controller
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	if configure != nil {
		configure(&cfg)
	}
	c, err := controller.New(cfg)
	if err != nil {
		t.Fatalf("controller.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-runErr; err != nil {
			t.Errorf("controller.Run: %v", err)
		}
	})
	wctx, wcancel := context.WithTimeout(context.Background(), startTimeout)
	defer wcancel()
	if err := c.WaitLeader(wctx); err != nil {
		t.Fatalf("controller: %v", err)
	}
	return &Server{Controller: c, Config: cfg, PKI: pki, Addr: c.GRPCAddr()}
}

// IssueCert issues a certificate for identity, signed by the server's CA,
// and returns its files.
func (s *Server) IssueCert(t testing.TB, id tlsutil.Identity) tlsutil.Files {
	t.Helper()
	ca, err := tlsutil.LoadCA(s.PKI.Controller.CA, filepath.Join(s.PKI.Dir, "ca.key"))
	if err != nil {
		t.Fatalf("load dev CA: %v", err)
	}
	// Longer than tlsutil.ExpiryWarning: a test certificate must not make
	// every client log "expires soon" (which also garbles bench output).
	files, err := ca.IssueFiles(t.TempDir(), id.Role+"-"+id.Name, s.PKI.Controller.CA, tlsutil.Leaf{Identity: id, Validity: issuedValidity})
	if err != nil {
		t.Fatalf("issue %s certificate: %v", id, err)
	}
	return files
}

// Dial opens a mutual-TLS client connection to the server with files as
// the client certificate, closed in t.Cleanup.
func (s *Server) Dial(t testing.TB, files tlsutil.Files) *grpc.ClientConn {
	t.Helper()
	cfg, err := tlsutil.ClientConfig(files, "localhost")
	if err != nil {
		t.Fatalf("client TLS: %v", err)
	}
	conn, err := grpc.NewClient(s.Addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatalf("dial %s: %v", s.Addr, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// ControlClient is a ControlService client authenticated with files.
func (s *Server) ControlClient(t testing.TB, files tlsutil.Files) turbulencev1.ControlServiceClient {
	t.Helper()
	return turbulencev1.NewControlServiceClient(s.Dial(t, files))
}

// AdminClient is a ControlService client with the admin certificate.
func (s *Server) AdminClient(t testing.TB) turbulencev1.ControlServiceClient {
	t.Helper()
	return s.ControlClient(t, s.PKI.Admin)
}

// AgentClient is an AgentService client with the agent certificate (agent
// ID AgentName).
func (s *Server) AgentClient(t testing.TB) turbulencev1.AgentServiceClient {
	t.Helper()
	return turbulencev1.NewAgentServiceClient(s.Dial(t, s.PKI.Agent))
}

// WaitFor polls cond every 10ms until it holds, failing the test after
// timeout. Use it instead of sleeping.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		<-tick.C
	}
}
