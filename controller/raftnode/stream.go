package raftnode

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
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
	// addr is the composite Address this node advertises (see Address).
	addr advertised

	// conns are the open connections, both ways. raft's NetworkTransport
	// closes neither its pooled outbound connections nor the inbound ones
	// it serves when it closes, so a stopped node would keep goroutines
	// (and its peers' reads) alive; closeAll ends them at Shutdown.
	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	closed bool
}

// trackedConn forgets itself when closed.
type trackedConn struct {
	net.Conn
	s    *tlsStreamLayer
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}

// track records conn, or closes it if the layer is closed already.
func (s *tlsStreamLayer) track(conn net.Conn) (net.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = conn.Close()
		return nil, net.ErrClosed
	}
	tc := &trackedConn{Conn: conn, s: s}
	s.conns[tc] = struct{}{}
	return tc, nil
}

// Accept waits for the next inbound raft connection.
func (s *tlsStreamLayer) Accept() (net.Conn, error) {
	conn, err := s.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return s.track(conn)
}

// closeAll closes every connection and refuses new ones. Call it after
// raft has shut down.
func (s *tlsStreamLayer) closeAll() {
	s.mu.Lock()
	s.closed = true
	conns := make([]*trackedConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

var _ raft.StreamLayer = (*tlsStreamLayer)(nil)

// newTLSStreamLayer wraps an already bound listener; grpcAddr, if set, is
// advertised with the raft address.
func newTLSStreamLayer(l net.Listener, files tlsutil.Files, grpcAddr string) (*tlsStreamLayer, error) {
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
		addr:     advertised(Address{Raft: l.Addr().String(), GRPC: grpcAddr}.String()),
		conns:    make(map[*trackedConn]struct{}),
	}, nil
}

// Addr is the composite address raft advertises for this node.
func (s *tlsStreamLayer) Addr() net.Addr { return s.addr }

// Dial opens a TLS connection to another controller's raft address.
func (s *tlsStreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := *s.dialer
	d.NetDialer = &net.Dialer{Timeout: timeout}
	conn, err := d.Dial("tcp", addressOf(address).Raft)
	if err != nil {
		return nil, err
	}
	return s.track(conn)
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
