package cli

import (
	"context"
	"net"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/turbulence-sre/turbulence/internal/testutil"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// rogueControl answers status and halt like a controller would, and
// counts the calls that reached it.
type rogueControl struct {
	turbulencev1.UnimplementedControlServiceServer
	calls atomic.Int32
}

func (r *rogueControl) GetHaltStatus(context.Context, *turbulencev1.GetHaltStatusRequest) (*turbulencev1.HaltStatus, error) {
	r.calls.Add(1)
	return &turbulencev1.HaltStatus{}, nil
}

func (r *rogueControl) Halt(context.Context, *turbulencev1.HaltRequest) (*turbulencev1.HaltStatus, error) {
	r.calls.Add(1)
	return &turbulencev1.HaltStatus{Halted: true}, nil
}

// TestRefusesServerWithOperatorCertificate: a server presenting an
// operator certificate (with an IP SAN, as turbctl used to issue) is not
// a controller, so status and halt must fail without a call reaching it
// (issue 13, finding 5), exit 6 like any controller that cannot be
// reached, and say why.
func TestRefusesServerWithOperatorCertificate(t *testing.T) {
	t.Parallel()
	pki, err := tlsutil.EnsureDevPKI(t.TempDir(), "a1")
	if err != nil {
		t.Fatal(err)
	}
	rogueFiles := testutil.IssueRogueServerCert(t, pki, tlsutil.Identity{Role: tlsutil.RoleOperator, Name: "mallory"})
	cfg, err := tlsutil.ServerConfig(rogueFiles)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rogue := &rogueControl{}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(cfg)))
	turbulencev1.RegisterControlServiceServer(srv, rogue)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	environ := map[string]string{
		EnvController: lis.Addr().String(),
		EnvCA:         pki.Admin.CA,
		EnvCert:       pki.Admin.Cert,
		EnvKey:        pki.Admin.Key,
	}
	for _, args := range [][]string{{"status"}, {"halt", "--reason", "test"}} {
		r := runCLI(t, environ, args...)
		r.check(t, ExitTLS, "is not a controller", "operator/mallory, want role controller")
	}
	if n := rogue.calls.Load(); n != 0 {
		t.Errorf("%d calls reached the operator-certificate server, want 0", n)
	}
}
