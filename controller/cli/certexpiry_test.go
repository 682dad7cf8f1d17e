package cli

import (
	"context"
	"crypto/x509"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// TestGoldenCertExpiry: `agents show` prints the agent certificate's
// expiry, with a warning within 14 days and a louder one once expired;
// `status` ends with the answering controller's certificate expiry.
func TestGoldenCertExpiry(t *testing.T) {
	t.Parallel()
	agentWith := func(left time.Duration) *turbulencev1.Agent {
		ag := proto.CloneOf(goldenAgents().GetAgents()[0])
		ag.Facts.CertNotAfter = ts(left)
		return ag
	}
	controllerCert := func(left time.Duration) *x509.Certificate {
		id := tlsutil.Identity{Role: tlsutil.RoleController, Name: "c1"}
		return &x509.Certificate{NotAfter: goldenNow.Add(left), URIs: []*url.URL{id.URI()}}
	}
	checkGoldens(t, []string{"table"}, []goldenCase{
		{"agents_show_cert_ok", func(a *app) error { return a.printAgent(agentWith(300 * 24 * time.Hour)) }},
		{"agents_show_cert_expiring", func(a *app) error { return a.printAgent(agentWith(5*24*time.Hour + 3*time.Hour)) }},
		{"agents_show_cert_expired", func(a *app) error { return a.printAgent(agentWith(-2 * time.Hour)) }},
		{"status_controller_cert_expiring", func(a *app) error {
			return controllerCertLine(a.stdout, goldenNow, "10.0.0.1:7420", controllerCert(13*24*time.Hour))
		}},
		{"status_controller_cert_ok", func(a *app) error {
			return controllerCertLine(a.stdout, goldenNow, "10.0.0.1:7420", controllerCert(90*24*time.Hour))
		}},
	})
}

// TestStatus_ShowsControllerCertificate: the line comes from the real
// handshake with the controller (here the fake's dev certificate).
func TestStatus_ShowsControllerCertificate(t *testing.T) {
	t.Parallel()
	h := startFake(t)
	r := runCLI(t, h.environ(), "status")
	r.check(t, ExitOK)
	if !strings.Contains(r.stdout, "controller controller/") || !strings.Contains(r.stdout, "certificate expires 20") {
		t.Errorf("status output lacks the controller certificate line:\n%s", r.stdout)
	}
	r = runCLI(t, h.environ(), "status", "-o", "json")
	if strings.Contains(r.stdout, "certificate") {
		t.Errorf("status -o json changed shape:\n%s", r.stdout)
	}
}

// GetHaltStatus answers `turbctl status` on the fake: not halted.
func (f *fakeControl) GetHaltStatus(context.Context, *turbulencev1.GetHaltStatusRequest) (*turbulencev1.HaltStatus, error) {
	return &turbulencev1.HaltStatus{}, nil
}

// TestStatus_NoLeaderIsUnavailable: a controller that knows no raft
// leader still answers the halt status from its replica; status used to
// print "running" and exit 0 on it (issue 13, item 8). It must say there
// is no leader, print no halt state, and exit 6.
func TestStatus_NoLeaderIsUnavailable(t *testing.T) {
	t.Parallel()
	fake := &fakeControl{faults: map[string]*turbulencev1.Fault{}}
	addr, pki := serveFake(t, func(srv *grpc.Server) {
		turbulencev1.RegisterControlServiceServer(srv, fake)
		turbulencev1.RegisterClusterServiceServer(srv, leaderCluster{none: true})
	})
	h := &harness{addr: addr, fake: fake, admin: pki.Admin}
	for _, args := range [][]string{{"status"}, {"status", "-o", "json"}} {
		r := runCLI(t, h.environ(), args...)
		r.check(t, ExitUnavailable, "knows no raft leader")
		if strings.Contains(r.stdout, "running") || r.stdout != "" {
			t.Errorf("%v printed a halt state without a leader:\n%s", args, r.stdout)
		}
	}
}
