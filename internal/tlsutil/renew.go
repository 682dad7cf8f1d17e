package tlsutil

import (
	"crypto/x509"
	"fmt"
	"time"
)

// Renewed is what Renew wrote.
type Renewed struct {
	Identity Identity
	Old, New *x509.Certificate
}

// Renew re-issues the certificate in certPath, signed by ca, for the same
// identity and the same DNS and IP names, valid for validity from now,
// with a fresh key, and replaces certPath and keyPath with it.
//
// Each file is replaced atomically (written beside it, then renamed over
// it), the key first. The daemons reload their files at the next
// handshake or on SIGHUP (Reloader), and a reloader that sees the new key
// beside the old certificate keeps the certificate it has until the
// certificate follows, so a running daemon never serves a broken pair.
//
// It refuses a certificate that ca did not sign: re-issuing it under
// another CA would give a host an identity that the rest of its fleet
// does not trust (rotating the CA is its own procedure,
// docs/operations.md).
func (ca *CA) Renew(certPath, keyPath string, validity time.Duration) (Renewed, error) {
	old, err := ReadCertFile(certPath)
	if err != nil {
		return Renewed{}, err
	}
	if err := old.CheckSignatureFrom(ca.Cert); err != nil {
		return Renewed{}, fmt.Errorf("%s was not issued by this CA (%s): %w", certPath, ca.Cert.Subject.CommonName, err)
	}
	id, err := IdentityFromCert(old)
	if err != nil {
		return Renewed{}, fmt.Errorf("%s: %w", certPath, err)
	}
	if err := ca.checkValidity(validity); err != nil {
		return Renewed{}, err
	}
	certPEM, keyPEM, err := ca.Issue(Leaf{Identity: id, DNSNames: old.DNSNames, IPs: old.IPAddresses, Validity: validity})
	if err != nil {
		return Renewed{}, err
	}
	if err := writeFile(keyPath, keyPEM, 0o600); err != nil {
		return Renewed{}, fmt.Errorf("replace key: %w", err)
	}
	if err := writeFile(certPath, certPEM, 0o644); err != nil {
		return Renewed{}, fmt.Errorf("replace certificate (the key %s is already new: run renew again): %w", keyPath, err)
	}
	renewed, err := ReadCertFile(certPath)
	if err != nil {
		return Renewed{}, err
	}
	return Renewed{Identity: id, Old: old, New: renewed}, nil
}
