package controller_test

import (
	"crypto/tls"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/turbulence-sre/turbulence/controller/controllertest"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// controlClientTLS is a ControlService client over a hand-made TLS
// configuration (for the rows a well-formed PKI cannot produce).
func controlClientTLS(t *testing.T, addr string, cfg *tls.Config) turbulencev1.ControlServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return turbulencev1.NewControlServiceClient(conn)
}

func clientTLS(t *testing.T, files tlsutil.Files) *tls.Config {
	t.Helper()
	cfg, err := tlsutil.ClientConfig(files, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestSecurity_RejectedConnections is the table of issue 7: each row is
// a caller that must be refused, and proves the refusal (the code, the
// reason, and that raft's log did not move).
func TestSecurity_RejectedConnections(t *testing.T) {
	srv := controllertest.NewServer(t, nil)
	srv.ConnectAgent(t, nil) // registers test-agent, so an apply could succeed
	ctx := t.Context()
	cpu := &turbulencev1.FaultSpec{Duration: durationpb.New(time.Minute), Kind: &turbulencev1.FaultSpec_Cpu{Cpu: &turbulencev1.CPUSpec{Cores: 1, LoadPercent: 10}}}
	apply := &turbulencev1.ApplyFaultRequest{AgentId: controllertest.AgentName, Spec: cpu}

	other, err := tlsutil.EnsureDevPKI(filepath.Join(t.TempDir(), "other"), "x")
	if err != nil {
		t.Fatal(err)
	}
	ca, err := tlsutil.LoadCA(srv.PKI.Controller.CA, filepath.Join(srv.PKI.Dir, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	expired, err := ca.IssueFiles(t.TempDir(), "expired", srv.PKI.Controller.CA, tlsutil.Leaf{
		Identity:  tlsutil.Identity{Role: tlsutil.RoleAdmin, Name: "old"},
		NotBefore: time.Now().Add(-48 * time.Hour),
		Validity:  24 * time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	viewer := srv.IssueCert(t, tlsutil.Identity{Role: tlsutil.RoleViewer, Name: "carol"})
	operator := srv.IssueCert(t, tlsutil.Identity{Role: tlsutil.RoleOperator, Name: "bob"})

	tests := []struct {
		name string
		// call makes the attempt and returns its error.
		call func(t *testing.T) error
		code codes.Code
		// any one of these must be in the message.
		msgs []string
		// tlsAlert rows are refused in the handshake: call returns the
		// TLS alert read on a raw connection (the gRPC client reports
		// it as Unavailable, with whatever the socket said first, which
		// may be a broken pipe), and checks Unavailable itself.
		tlsAlert bool
	}{
		{
			name: "no client certificate",
			call: func(t *testing.T) error {
				cfg := clientTLS(t, srv.PKI.Admin)
				cfg.GetClientCertificate, cfg.Certificates = nil, nil
				_, err := controlClientTLS(t, srv.Addr, cfg).ApplyFault(ctx, apply)
				return handshakeRefusal(t, srv.Addr, cfg, err)
			},
			tlsAlert: true,
			msgs:     []string{"certificate required"},
		},
		{
			name: "certificate from another CA",
			call: func(t *testing.T) error {
				files := other.Admin
				files.CA = srv.PKI.Controller.CA // trust the server; only the client is foreign
				_, err := srv.ControlClient(t, files).ApplyFault(ctx, apply)
				return handshakeRefusal(t, srv.Addr, clientTLS(t, files), err)
			},
			tlsAlert: true,
			msgs:     []string{"unknown certificate authority", "bad certificate"},
		},
		{
			name: "expired certificate",
			call: func(t *testing.T) error {
				_, err := srv.ControlClient(t, expired).ApplyFault(ctx, apply)
				return handshakeRefusal(t, srv.Addr, clientTLS(t, expired), err)
			},
			tlsAlert: true,
			msgs:     []string{"expired certificate", "bad certificate"},
		},
		{
			name: "agent certificate on the ControlService",
			call: func(t *testing.T) error {
				_, err := srv.ControlClient(t, srv.PKI.Agent).ApplyFault(ctx, apply)
				return err
			},
			code: codes.PermissionDenied,
			msgs: []string{"agent/" + controllertest.AgentName + " may not change"},
		},
		{
			name: "agent certificate reading the ControlService",
			call: func(t *testing.T) error {
				_, err := srv.ControlClient(t, srv.PKI.Agent).ListAudit(ctx, &turbulencev1.ListAuditRequest{})
				return err
			},
			code: codes.PermissionDenied,
			msgs: []string{"may not read"},
		},
		{
			name: "agent certificate claiming another agent's ID",
			call: func(t *testing.T) error {
				a := srv.OpenAgentStream(t)
				a.Send(t, &turbulencev1.AgentMessage{Msg: &turbulencev1.AgentMessage_Hello{Hello: &turbulencev1.Hello{
					AgentId: "someone-else", Capabilities: &turbulencev1.Capabilities{FaultKinds: []string{"cpu"}},
				}}})
				_, err := a.Recv(10 * time.Second)
				return err
			},
			code: codes.PermissionDenied,
			msgs: []string{`hello.agent_id "someone-else" does not match the certificate's agent name "test-agent"`},
		},
		{
			name: "viewer trying to apply",
			call: func(t *testing.T) error {
				_, err := srv.ControlClient(t, viewer).ApplyFault(ctx, apply)
				return err
			},
			code: codes.PermissionDenied,
			msgs: []string{"viewer/carol may not change"},
		},
		{
			name: "viewer trying to resume",
			call: func(t *testing.T) error {
				_, err := srv.ControlClient(t, viewer).Resume(ctx, &turbulencev1.ResumeRequest{})
				return err
			},
			code: codes.PermissionDenied,
			msgs: []string{"viewer/carol may not change"},
		},
		{
			name: "operator trying to remove a controller",
			call: func(t *testing.T) error {
				_, err := turbulencev1.NewClusterServiceClient(srv.Dial(t, operator)).RemoveServer(ctx, &turbulencev1.RemoveServerRequest{Id: srv.Config.NodeID})
				if status.Code(err) == codes.Unimplemented {
					t.Skip("this controller serves no ClusterService.RemoveServer yet: the operator row cannot be checked")
				}
				return err
			},
			code: codes.PermissionDenied,
			msgs: []string{"operator/bob may not"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := srv.Controller.LastRaftIndex()
			err := tt.call(t)
			msg := status.Convert(err).Message()
			if tt.tlsAlert {
				msg = err.Error()
			} else if status.Code(err) != tt.code {
				t.Fatalf("error = %v, want code %s", err, tt.code)
			}
			if !containsAny(msg, tt.msgs) {
				t.Errorf("message %q names none of %q", msg, tt.msgs)
			}
			if after := srv.Controller.LastRaftIndex(); after != before {
				t.Errorf("raft log moved from %d to %d: the refused call changed something", before, after)
			}
		})
	}

	// The rows are refusals of these callers, not of everyone: the same
	// call with the admin certificate goes through.
	if _, err := srv.AdminClient(t).ApplyFault(ctx, apply); err != nil {
		t.Fatalf("admin apply (control row): %v", err)
	}
}

// TestSecurity_RaftRefusesNonControllers dials the raft port with an
// agent, an admin and a controller certificate. The first two are
// refused by the TLS layer (the server's verdict arrives with the first
// read in TLS 1.3); the controller's connection is held open, waiting for
// an RPC, which proves the refusal is about the role.
func TestSecurity_RaftRefusesNonControllers(t *testing.T) {
	srv := controllertest.NewServer(t, nil)
	raftAddr := srv.Controller.RaftAddr()
	dial := func(t *testing.T, files tlsutil.Files) error {
		cfg, err := tlsutil.ClientConfig(files, "localhost")
		if err != nil {
			t.Fatal(err)
		}
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", raftAddr, cfg)
		if err != nil {
			return err
		}
		defer func() { _ = conn.Close() }()
		_ = conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		_, err = conn.Read(make([]byte, 1))
		return err
	}
	for _, tc := range []struct {
		name  string
		files tlsutil.Files
	}{
		{"agent", srv.PKI.Agent},
		{"admin", srv.PKI.Admin},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := srv.Controller.LastRaftIndex()
			err := dial(t, tc.files)
			var ne net.Error
			if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
				t.Fatalf("an %s certificate reached the raft transport (read: %v)", tc.name, err)
			}
			if !strings.Contains(err.Error(), "bad certificate") && !strings.Contains(err.Error(), "tls") {
				t.Errorf("refusal %q is not a TLS alert", err)
			}
			if after := srv.Controller.LastRaftIndex(); after != before {
				t.Errorf("raft log moved from %d to %d", before, after)
			}
		})
	}
	t.Run("controller (control row)", func(t *testing.T) {
		err := dial(t, srv.PKI.Controller)
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("controller certificate: read = %v, want a timeout (connection accepted, waiting for an RPC)", err)
		}
	})
}

// TestSecurity_Limits: a message above the 4 MiB limit is refused before
// it reaches a handler, and a caller past its write rate gets
// ResourceExhausted naming the limit while Halt still works.
func TestSecurity_Limits(t *testing.T) {
	srv := controllertest.NewServer(t, nil)
	ctx := t.Context()
	admin := srv.AdminClient(t)

	before := srv.Controller.LastRaftIndex()
	_, err := admin.Halt(ctx, &turbulencev1.HaltRequest{Reason: strings.Repeat("x", 5<<20)})
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "larger than max") {
		t.Fatalf("5 MiB request = %v, want ResourceExhausted (message size limit)", err)
	}
	if after := srv.Controller.LastRaftIndex(); after != before {
		t.Errorf("an oversized request moved the raft log from %d to %d", before, after)
	}

	op := srv.ControlClient(t, srv.IssueCert(t, tlsutil.Identity{Role: tlsutil.RoleOperator, Name: "loop"}))
	var limited error
	for i := range 200 {
		_, err := op.RevertFault(ctx, &turbulencev1.RevertFaultRequest{Id: "no-such-fault"})
		if status.Code(err) == codes.ResourceExhausted {
			limited = err
			if i < 40 {
				t.Errorf("limited after %d calls, want the burst of 40 first", i)
			}
			break
		}
		if status.Code(err) != codes.NotFound {
			t.Fatalf("revert %d: %v", i, err)
		}
	}
	if limited == nil {
		t.Fatal("200 writes in a row were never rate limited")
	}
	if !strings.Contains(limited.Error(), "at most 20 mutating calls per second, bursts of 40") {
		t.Errorf("rate limit message %q does not name the limit", limited)
	}
	// Invariant 5: the kill switch works for the caller that was just
	// limited.
	if hs, err := op.Halt(ctx, &turbulencev1.HaltRequest{Reason: "limited but still able to halt"}); err != nil || !hs.GetHalted() {
		t.Fatalf("halt after being rate limited = %v, %v", hs, err)
	}
	// Other callers are not affected.
	if _, err := admin.Resume(ctx, &turbulencev1.ResumeRequest{}); err != nil {
		t.Fatalf("admin resume while the operator is limited: %v", err)
	}
}

// handshakeRefusal checks that the gRPC call failed as Unavailable (no
// handler ran), then repeats the handshake on a raw connection and
// returns the server's verdict: the TLS alert that arrives with the first
// read in TLS 1.3.
func handshakeRefusal(t *testing.T, addr string, cfg *tls.Config, grpcErr error) error {
	t.Helper()
	if status.Code(grpcErr) != codes.Unavailable {
		t.Fatalf("gRPC call = %v, want Unavailable (refused in the handshake)", grpcErr)
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = conn.Read(make([]byte, 1))
	if err == nil {
		t.Fatal("the server accepted the connection")
	}
	return err
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
