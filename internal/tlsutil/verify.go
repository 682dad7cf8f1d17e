package tlsutil

import (
	"crypto/tls"
	"errors"
	"fmt"
)

// ErrWrongPeerRole is the cause of a handshake refused because the other
// side's certificate, although signed by the CA, carries another role (or
// another name) than the one this side must talk to.
var ErrWrongPeerRole = errors.New("peer certificate has the wrong identity")

// RequirePeerRole returns a tls.Config.VerifyConnection that accepts the
// connection only when the peer's verified leaf certificate carries role.
//
// Every certificate the CA signs chains to the same root, so chain
// verification alone cannot tell a controller from an operator who was
// given a certificate with an IP SAN: a client that must reach a
// controller (an agent, turbctl, a forwarding controller) checks the role
// as well, or it would obey whoever holds any fleet certificate
// (docs/security.md, "Every client verifies the server's role").
func RequirePeerRole(role string) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		id, err := peerLeafIdentity(cs)
		if err != nil {
			return err
		}
		if id.Role != role {
			return fmt.Errorf("%w: %s, want role %s", ErrWrongPeerRole, id, role)
		}
		return nil
	}
}

// RequirePeer is RequirePeerRole that also pins the name: the peer must be
// exactly want (a controller that claims a node ID must hold that node's
// certificate).
func RequirePeer(want Identity) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		id, err := peerLeafIdentity(cs)
		if err != nil {
			return err
		}
		if id != want {
			return fmt.Errorf("%w: %s, want %s", ErrWrongPeerRole, id, want)
		}
		return nil
	}
}

func peerLeafIdentity(cs tls.ConnectionState) (Identity, error) {
	if len(cs.PeerCertificates) == 0 {
		return Identity{}, fmt.Errorf("%w: no certificate", ErrWrongPeerRole)
	}
	id, err := IdentityFromCert(cs.PeerCertificates[0])
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrWrongPeerRole, err)
	}
	return id, nil
}
