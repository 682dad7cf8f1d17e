package raftnode

import (
	"crypto/tls"
	"errors"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/internal/tlsutil"
)

// guardedLayer is a stream layer on a loopback port with guard, and a
// goroutine that accepts like raft's transport and keeps each connection
// reading until it fails (raft's handler waits for the next command the
// same way).
type guardedLayer struct {
	s        *tlsStreamLayer
	pki      tlsutil.DevPKI
	mu       sync.Mutex
	failures []error
}

func startGuardedLayer(t *testing.T, guard Guard) *guardedLayer {
	t.Helper()
	pki, err := tlsutil.EnsureDevPKI(filepath.Join(t.TempDir(), "tls"), "agent-1")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &guardedLayer{pki: pki}
	guard.OnHandshakeFailure = func(_ net.Addr, err error) {
		g.mu.Lock()
		g.failures = append(g.failures, err)
		g.mu.Unlock()
	}
	s, err := newTLSStreamLayer(l, pki.Controller, "", guard)
	if err != nil {
		t.Fatal(err)
	}
	g.s = s
	var served sync.WaitGroup
	served.Go(func() {
		for {
			c, err := s.Accept()
			if err != nil {
				return
			}
			served.Go(func() {
				defer func() { _ = c.Close() }()
				// Echo what arrives, so that a client knows its bytes were
				// read.
				buf := make([]byte, 64)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
			})
		}
	})
	t.Cleanup(func() {
		s.closeAll()
		served.Wait()
	})
	return g
}

func (g *guardedLayer) handshakeFailures() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.failures)
}

// waitClosed fails the test unless the far side closes c within limit.
func waitClosed(t *testing.T, c net.Conn, limit time.Duration) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(limit))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection not closed by the raft port within %s (read: %v)", limit, err)
	}
}

// TestStreamLayer_ClosesSilentConnectionAtHandshakeDeadline: a TCP
// connection that never starts a TLS handshake is closed once the
// handshake deadline passes, and the failure is reported. Before, it was
// held for ever (issue 13, finding 3).
func TestStreamLayer_ClosesSilentConnectionAtHandshakeDeadline(t *testing.T) {
	t.Parallel()
	g := startGuardedLayer(t, Guard{HandshakeTimeout: 200 * time.Millisecond})
	c, err := net.Dial("tcp", g.s.lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	waitClosed(t, c, 10*time.Second)
	waitFor(t, 10*time.Second, func() bool { return g.handshakeFailures() == 1 })
	waitFor(t, 10*time.Second, func() bool { return g.s.Stats().Open == 0 })
}

// TestStreamLayer_ClosesSilentControllerConnection: a controller that
// completed its handshake and then sends nothing within the idle timeout
// is closed too; one that sent an RPC's first bytes is raft's to keep,
// however long it then waits (a pooled connection waits for the next
// election).
func TestStreamLayer_ClosesSilentControllerConnection(t *testing.T) {
	t.Parallel()
	const idle = 300 * time.Millisecond
	g := startGuardedLayer(t, Guard{IdleTimeout: idle})
	cfg, err := tlsutil.ClientConfig(g.pki.Controller, "")
	if err != nil {
		t.Fatal(err)
	}
	silent, err := tls.Dial("tcp", g.s.lis.Addr().String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = silent.Close() }()
	active, err := tls.Dial("tcp", g.s.lis.Addr().String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = active.Close() }()
	if _, err := active.Write([]byte{0}); err != nil {
		t.Fatalf("write: %v", err)
	}
	_ = active.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := active.Read(make([]byte, 1)); err != nil {
		t.Fatalf("echo of the first byte: %v", err)
	}
	waitClosed(t, silent, 10*time.Second)
	// The silent one is gone, so its deadline has passed; the active one,
	// idle since its first byte for at least as long, is still open.
	_ = active.SetReadDeadline(time.Now().Add(2 * idle))
	if _, err := active.Read(make([]byte, 1)); !isTimeout(err) {
		t.Fatalf("connection that carried a byte: read = %v, want a timeout (still open)", err)
	}
	if n := g.handshakeFailures(); n != 0 {
		t.Errorf("%d handshake failures reported for a controller", n)
	}
}

// TestStreamLayer_ReportsRefusedCertificate: a failed handshake (an agent
// certificate on the raft port) is reported with its cause.
func TestStreamLayer_ReportsRefusedCertificate(t *testing.T) {
	t.Parallel()
	g := startGuardedLayer(t, Guard{})
	cfg, err := tlsutil.ClientConfig(g.pki.Agent, "")
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.Dial("tcp", g.s.lis.Addr().String(), cfg)
	if err == nil {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _ = c.Read(make([]byte, 1))
		_ = c.Close()
	}
	waitFor(t, 10*time.Second, func() bool { return g.handshakeFailures() == 1 })
	g.mu.Lock()
	defer g.mu.Unlock()
	if !errors.Is(g.failures[0], errNotController) {
		t.Errorf("handshake failure = %v, want errNotController", g.failures[0])
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestStreamLayer_TrackAfterCloseAllDoesNotDeadlock: a connection whose
// handshake (or an outbound dial) completes while closeAll runs is
// refused and closed, without waiting on the layer's own lock. Before,
// add closed it under s.mu and its Close took s.mu again, so the
// handshake goroutine hung and closeAll waited on it for ever: a
// controller test stopping a node hung for the whole test timeout.
func TestStreamLayer_TrackAfterCloseAllDoesNotDeadlock(t *testing.T) {
	t.Parallel()
	g := startGuardedLayer(t, Guard{})
	g.s.closeAll()
	a, b := net.Pipe()
	defer func() { _ = b.Close() }()
	done := make(chan error, 1)
	go func() {
		_, err := g.s.track(a, time.Second)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("track after closeAll = %v, want net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("track after closeAll did not return within 10s: it waits on the layer's own lock")
	}
	// The refused connection was closed: its peer reads EOF.
	if _, err := b.Read(make([]byte, 1)); err == nil {
		t.Fatal("the refused connection is still open")
	}
}
