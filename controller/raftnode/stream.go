package raftnode

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/turbulence-sre/turbulence/internal/connlimit"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
)

// Guards of the raft port (docs/security.md, "Guarded listeners"). Only
// controllers speak raft, a handful of them, each holding a few pooled
// connections to each peer (transportMaxPool) plus one per snapshot, so
// the caps are far above what a healthy cluster uses and far below the
// process's descriptor limit.
const (
	// DefaultRaftMaxConnsPerSource is the most raft connections held
	// from one address. A peer uses at most transportMaxPool pooled
	// connections, one for heartbeats, one for a snapshot and a few while
	// an election redials; 32 also fits a test cluster of five nodes
	// that all share 127.0.0.1.
	DefaultRaftMaxConnsPerSource = 32
	// DefaultRaftMaxConns is the most raft connections held in all: room
	// for seven controllers at the per-source cap and more.
	DefaultRaftMaxConns = 256
	// DefaultHandshakeTimeout bounds the TLS handshake of an inbound
	// connection, from accept to verified certificate. Peers are a few
	// milliseconds away; a connection that has not proved itself a
	// controller in 5 s is not one worth a descriptor.
	DefaultHandshakeTimeout = 5 * time.Second
	// DefaultIdleTimeout closes an inbound connection that completed its
	// handshake but sent no RPC within this long. raft dials on demand
	// and writes its RPC at once, so a real peer never waits; a silent
	// connection only holds a slot. Once a connection has carried an
	// RPC it is raft's to keep, however long it then waits: the dialing
	// side pools connections (one kept for the next election's votes may
	// sit unused for hours), and closing one under it would fail that
	// RPC and cost an election round. Such connections are bounded by
	// the caps and come only from controller certificates.
	DefaultIdleTimeout = 10 * time.Second
)

// Guard bounds the raft port: connection caps, a handshake deadline and
// a deadline for the first RPC of inbound connections. Zero fields take
// the defaults above.
type Guard struct {
	Limits           connlimit.Limits
	HandshakeTimeout time.Duration
	IdleTimeout      time.Duration
	// OnHandshakeFailure, if set, is told of every inbound connection
	// whose TLS handshake failed or timed out (visible refusals,
	// docs/security.md). It must not block.
	OnHandshakeFailure func(remote net.Addr, err error)
}

// WithDefaults fills the zero fields with the defaults.
func (g Guard) WithDefaults() Guard {
	if g.Limits.PerSource == 0 {
		g.Limits.PerSource = DefaultRaftMaxConnsPerSource
	}
	if g.Limits.Total == 0 {
		g.Limits.Total = DefaultRaftMaxConns
	}
	if g.HandshakeTimeout <= 0 {
		g.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if g.IdleTimeout <= 0 {
		g.IdleTimeout = DefaultIdleTimeout
	}
	return g
}

// tlsStreamLayer is raft's StreamLayer over mutual TLS: inbound
// connections come through the capped listener and are handed to raft
// only once their TLS handshake has succeeded, outbound ones through a
// TLS dialer, and both sides require the peer to be a controller.
//
// The handshake runs on its own goroutine per connection, under the
// handshake deadline, and not in raft's accept loop: a connection that
// never speaks must neither hold up the next one nor reach raft, whose
// connection handler would wait for it forever.
type tlsStreamLayer struct {
	lis    *connlimit.Listener
	tlsCfg *tls.Config
	guard  Guard
	dialer *tls.Dialer
	// addr is the composite Address this node advertises (see Address).
	addr advertised

	// ready carries handshaken inbound connections to Accept; done is
	// closed by Close.
	ready     chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
	// workers are the accept loop and the handshakes in progress.
	workers sync.WaitGroup

	// conns are the open connections, both ways, and those still in
	// their handshake. raft's NetworkTransport closes neither its pooled
	// outbound connections nor the inbound ones it serves when it
	// closes, so a stopped node would keep goroutines (and its peers'
	// reads) alive; closeAll ends them at Shutdown.
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// trackedConn forgets itself when closed. An inbound one (idle > 0)
// must deliver its first bytes within idle of its handshake: until then
// its reads carry that deadline, and raft's handler closes it on the
// timeout. From the first byte on, the deadline is lifted (see
// DefaultIdleTimeout). Reads of one connection come from one goroutine
// (raft's handler), so active needs no lock.
type trackedConn struct {
	net.Conn
	s      *tlsStreamLayer
	idle   time.Duration
	until  time.Time
	active bool
	once   sync.Once
}

func (c *trackedConn) Read(p []byte) (int, error) {
	if c.idle <= 0 || c.active {
		return c.Conn.Read(p)
	}
	if c.until.IsZero() {
		c.until = time.Now().Add(c.idle)
		if err := c.SetReadDeadline(c.until); err != nil {
			return 0, err
		}
	}
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.active = true
		if derr := c.SetReadDeadline(time.Time{}); derr != nil && err == nil {
			err = derr
		}
	}
	return n, err
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.s.forget(c) })
	return c.Conn.Close()
}

// add records conn, or closes it and fails if the layer is closed. The
// close happens after s.mu is released: a trackedConn's Close calls
// forget, which takes s.mu (a connection whose handshake ends while
// closeAll runs would otherwise wait on itself, and closeAll on it).
func (s *tlsStreamLayer) add(conn net.Conn) error {
	s.mu.Lock()
	closed := s.closed
	if !closed {
		s.conns[conn] = struct{}{}
	}
	s.mu.Unlock()
	if closed {
		_ = conn.Close()
		return net.ErrClosed
	}
	return nil
}

func (s *tlsStreamLayer) forget(conn net.Conn) {
	s.mu.Lock()
	delete(s.conns, conn)
	s.mu.Unlock()
}

// track records an established connection and returns it wrapped.
func (s *tlsStreamLayer) track(conn net.Conn, idle time.Duration) (net.Conn, error) {
	tc := &trackedConn{Conn: conn, s: s, idle: idle}
	if err := s.add(tc); err != nil {
		return nil, err
	}
	return tc, nil
}

// acceptLoop takes connections off the capped listener and starts a
// handshake for each, until the listener is closed.
func (s *tlsStreamLayer) acceptLoop() {
	defer s.workers.Done()
	var delay time.Duration
	for {
		raw, err := s.lis.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors or another passing error: back off as
			// net/http does, without spinning.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			select {
			case <-s.done:
				return
			case <-time.After(delay):
			}
			continue
		}
		delay = 0
		if err := s.add(raw); err != nil {
			return
		}
		s.workers.Add(1)
		go s.handshake(raw)
	}
}

// handshake completes the TLS handshake of an inbound connection within
// the handshake deadline and hands it to Accept, or closes it.
func (s *tlsStreamLayer) handshake(raw net.Conn) {
	defer s.workers.Done()
	conn := tls.Server(raw, s.tlsCfg)
	_ = raw.SetDeadline(time.Now().Add(s.guard.HandshakeTimeout))
	err := conn.Handshake()
	// The handshake is done: from here the first-RPC deadline governs
	// reads (trackedConn) and raft's own deadlines its writes.
	_ = raw.SetDeadline(time.Time{})
	s.forget(raw)
	if err != nil {
		_ = raw.Close()
		if s.guard.OnHandshakeFailure != nil {
			select {
			case <-s.done: // our own Close cut it
			default:
				s.guard.OnHandshakeFailure(raw.RemoteAddr(), err)
			}
		}
		return
	}
	tc, err := s.track(conn, s.guard.IdleTimeout)
	if err != nil {
		return
	}
	select {
	case s.ready <- tc:
	case <-s.done:
		_ = tc.Close()
	}
}

// Accept waits for the next inbound raft connection that has completed
// its handshake.
func (s *tlsStreamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.ready:
		return c, nil
	case <-s.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting; raft's transport calls it when it closes.
// Connections already open stay until closeAll.
func (s *tlsStreamLayer) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.done)
		err = s.lis.Close()
	})
	return err
}

// closeAll closes every connection, refuses new ones and waits for the
// accept loop and handshakes to end. Call it after raft has shut down.
func (s *tlsStreamLayer) closeAll() {
	_ = s.Close()
	s.mu.Lock()
	s.closed = true
	conns := make([]net.Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	s.workers.Wait()
}

// Stats counts the raft port's connections (for tests and benchmarks).
func (s *tlsStreamLayer) Stats() connlimit.Stats { return s.lis.Stats() }

var _ raft.StreamLayer = (*tlsStreamLayer)(nil)

// newTLSStreamLayer wraps an already bound listener; grpcAddr, if set, is
// advertised with the raft address.
func newTLSStreamLayer(l net.Listener, files tlsutil.Files, grpcAddr string, guard Guard) (*tlsStreamLayer, error) {
	guard = guard.WithDefaults()
	if err := guard.Limits.Validate(); err != nil {
		return nil, fmt.Errorf("raft listener: %w", err)
	}
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
	s := &tlsStreamLayer{
		lis:    connlimit.Wrap(l, guard.Limits),
		tlsCfg: serverCfg,
		guard:  guard,
		dialer: &tls.Dialer{Config: clientCfg},
		addr:   advertised(Address{Raft: l.Addr().String(), GRPC: grpcAddr}.String()),
		ready:  make(chan net.Conn),
		done:   make(chan struct{}),
		conns:  make(map[net.Conn]struct{}),
	}
	s.workers.Add(1)
	go s.acceptLoop()
	return s, nil
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
	// Outbound: raft sets its own deadlines on every RPC.
	return s.track(conn, 0)
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
