package cli

import (
	"crypto/x509"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/turbulence-sre/turbulence/internal/tlsutil"
)

// certExpiry renders a certificate's NotAfter for `agents show` and
// `status`, with a warning from tlsutil.ExpiryWarning (14 days) on, the
// same threshold at which the daemons start warning in their logs: an
// agent whose certificate expires cannot reconnect, and its faults are
// then reverted by its lease (invariant 2) — safe, but the host leaves
// the fleet until someone notices.
func certExpiry(notAfter *timestamppb.Timestamp, now time.Time) string {
	if notAfter == nil {
		return none
	}
	left := notAfter.AsTime().Sub(now)
	switch {
	case left <= 0:
		return absolute(notAfter, now) + "  EXPIRED: issue a new certificate (turbctl tls cert create) and replace the files"
	case left <= tlsutil.ExpiryWarning:
		return absolute(notAfter, now) + "  WARNING: expires within 14 days; issue a new certificate (turbctl tls cert create) and replace the files"
	}
	return absolute(notAfter, now)
}

// serverCertificate is the leaf certificate the controller presented on
// the call that filled p: what it serves now, after any reload.
func serverCertificate(p *peer.Peer) *x509.Certificate {
	if p == nil {
		return nil
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		return nil
	}
	return info.State.PeerCertificates[0]
}

// controllerCertLine prints which controller answered and when its
// certificate expires, below `turbctl status`. The date is read from the
// TLS handshake of this very call, so it needs no API field and is true
// even for a controller that has not restarted since its files changed.
func controllerCertLine(w io.Writer, now time.Time, addr string, cert *x509.Certificate) error {
	if cert == nil {
		return nil
	}
	who := addr
	if id, err := tlsutil.IdentityFromCert(cert); err == nil {
		who = id.String() + " at " + addr
	}
	_, err := fmt.Fprintf(w, "controller %s: certificate expires %s\n", cell(who), certExpiry(timestamppb.New(cert.NotAfter), now))
	return err
}
