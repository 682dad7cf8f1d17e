package connlimit

import (
	"fmt"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc/credentials"
)

// errHandshakeQueue is the error of a connection that waited its whole
// handshake deadline for a turn. It is a net.Error timeout, so that the
// refusal log names it as a slow handshake.
type errHandshakeQueue struct{ waited time.Duration }

func (e errHandshakeQueue) Error() string {
	return fmt.Sprintf("no handshake slot within %s (the server is busy with other handshakes)", e.waited)
}
func (errHandshakeQueue) Timeout() bool   { return true }
func (errHandshakeQueue) Temporary() bool { return true }

var _ net.Error = errHandshakeQueue{}

// Handshakes wraps a server's transport credentials so that at most n
// handshakes start in any stretch of hold: a handshake takes a slot and
// gives it back when it ends, or after hold if it is still running. The
// others wait for a slot, each for at most wait, and then fail as timed
// out. A connection that gets a slot has wait again for its handshake
// (and whatever the server reads next under the same deadline): time
// spent in line must not make an honest handshake miss its deadline
// halfway, wasting the work done and the peer's retry.
//
// Why: when a whole fleet dials at once (the first start, or every
// agent after a leader change), thousands of TLS handshakes each get a
// sliver of two cores, every one of them outlives its deadline, and
// each failure is followed by a retry that costs the same again, so the
// fleet attaches late or not at all. With a few handshakes at a time
// each one finishes in milliseconds and the rest wait in line, which
// costs no CPU (docs/benchmarks.md).
//
// Why a slot is given back after hold even if its handshake goes on: a
// peer that opens connections and never finishes its handshake must not
// keep the slots, and with them every honest peer, out until the
// deadline. Held for at most hold, a slot costs such a peer a
// connection (of the few its address may hold, Limits.PerSource) every
// hold; the honest handshakes still start, at worst a little slower.
func Handshakes(inner credentials.TransportCredentials, n int, hold, wait time.Duration) credentials.TransportCredentials {
	return &gatedCreds{TransportCredentials: inner, slots: make(chan struct{}, max(n, 1)), hold: hold, wait: wait}
}

type gatedCreds struct {
	credentials.TransportCredentials
	slots chan struct{}
	hold  time.Duration
	wait  time.Duration
}

func (c *gatedCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	select {
	case c.slots <- struct{}{}:
	default:
		t := time.NewTimer(c.wait)
		select {
		case c.slots <- struct{}{}:
			t.Stop()
		case <-t.C:
			return nil, nil, errHandshakeQueue{waited: c.wait}
		}
	}
	if err := raw.SetDeadline(time.Now().Add(c.wait)); err != nil {
		<-c.slots
		return nil, nil, err
	}
	var once sync.Once
	release := func() { once.Do(func() { <-c.slots }) }
	t := time.AfterFunc(c.hold, release)
	defer func() {
		t.Stop()
		release()
	}()
	return c.TransportCredentials.ServerHandshake(raw)
}

// Clone keeps the gate, shared: it bounds the server, not one clone.
func (c *gatedCreds) Clone() credentials.TransportCredentials {
	return &gatedCreds{TransportCredentials: c.TransportCredentials.Clone(), slots: c.slots, hold: c.hold, wait: c.wait}
}
