package controller_test

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/turbulence-sre/turbulence/controller/controllertest"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// TestAgentCertExpiry_FromTheVerifiedCertificate: an agent's
// cert_not_after is the NotAfter of the certificate the controller
// verified, whatever the agent's Hello claims (a controller checks an
// agent's claims against its certificate, issue 7).
func TestAgentCertExpiry_FromTheVerifiedCertificate(t *testing.T) {
	t.Parallel()
	srv := controllertest.NewServer(t, nil)
	cert, err := tlsutil.ReadCertFile(srv.PKI.Agent.Cert)
	if err != nil {
		t.Fatal(err)
	}
	claim := timestamppb.New(time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC))
	srv.ConnectAgent(t, &turbulencev1.Hello{
		AgentId: controllertest.AgentName,
		Facts:   &turbulencev1.HostFacts{Hostname: "h1", CertNotAfter: claim},
	})
	ag, err := srv.AdminClient(t).GetAgent(t.Context(), &turbulencev1.GetAgentRequest{Id: controllertest.AgentName})
	if err != nil {
		t.Fatal(err)
	}
	if got := ag.GetFacts().GetCertNotAfter().AsTime(); !got.Equal(cert.NotAfter) {
		t.Errorf("cert_not_after = %s, want the verified certificate's %s (the agent claimed %s)", got, cert.NotAfter, claim.AsTime())
	}
	if ag.GetFacts().GetHostname() != "h1" {
		t.Errorf("facts = %v, want the agent's other facts kept", ag.GetFacts())
	}
}
