package session

import (
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/agent/internal/fakecontroller"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
)

// TestSession_HelloReportsCertificateExpiry: the Hello carries the
// agent certificate's NotAfter beside the configured facts, so that an
// expiring certificate shows in `turbctl agents show` without logs.
func TestSession_HelloReportsCertificateExpiry(t *testing.T) {
	t.Parallel()
	pki, err := tlsutil.EnsureDevPKI(t.TempDir(), "agent-under-test")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tlsutil.ReadCertFile(pki.Agent.Cert)
	if err != nil {
		t.Fatal(err)
	}
	fc := fakecontroller.Start(t, pki, fakecontroller.Options{})
	startSession(t, pki, fc.Addr)

	h := fc.WaitHello(10 * time.Second)
	if got := h.GetFacts().GetCertNotAfter().AsTime(); !got.Equal(cert.NotAfter) {
		t.Errorf("hello.facts.cert_not_after = %s, want the certificate's %s", got, cert.NotAfter)
	}
	if h.GetFacts().GetHostname() != "h" {
		t.Errorf("hello.facts = %v, want the configured facts kept", h.GetFacts())
	}
}
