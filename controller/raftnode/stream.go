package raftnode

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"

	"github.com/turbulence-sre/turbulence/internal/tlsutil"
)

// tlsStreamLayer is raft's StreamLayer over mutual TLS: inbound
// connections come through a TLS listener, outbound ones through a TLS
// dialer, and both sides require the peer to be a controller.
type tlsStreamLayer struct {
	net.Listener
	dialer *tls.Dialer
}

var _ raft.StreamLayer = (*tlsStreamLayer)(nil)

// newTLSStreamLayer wraps an already bound listener.
func newTLSStreamLayer(l net.Listener, files tlsutil.Files) (*tlsStreamLayer, error) {
	serverCfg, err := tlsutil.ServerConfig(files)
	if err != nil {
		return nil, fmt.Errorf("raft server TLS: %w", err)
	}
	serverCfg.VerifyConnection = requireController
	clientCfg, err := tlsutil.ClientConfig(files, "")
	if err != nil {
		return nil, fmt.Errorf("raft client TLS: %w", err)
	}
	clientCfg.VerifyConnection = requireController
	return &tlsStreamLayer{
		Listener: tls.NewListener(l, serverCfg),
		dialer:   &tls.Dialer{Config: clientCfg},
	}, nil
}

// Dial opens a TLS connection to another controller's raft address.
func (s *tlsStreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := *s.dialer
	d.NetDialer = &net.Dialer{Timeout: timeout}
	return d.Dial("tcp", string(address))
}

// errNotController: only controllers may take part in raft; an agent or
// an admin certificate signed by the same CA must not.
var errNotController = errors.New("raft peer is not a controller")

func requireController(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errNotController
	}
	id, err := tlsutil.IdentityFromCert(cs.PeerCertificates[0])
	if err != nil {
		return fmt.Errorf("raft peer: %w", err)
	}
	if id.Role != tlsutil.RoleController {
		return fmt.Errorf("%w: %s", errNotController, id)
	}
	return nil
}
