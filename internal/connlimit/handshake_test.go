package connlimit

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc/credentials"
)

// blockingCreds is server credentials whose handshake lasts until
// released, counting how many run at once.
type blockingCreds struct {
	credentials.TransportCredentials
	running, peak atomic.Int32
	release       chan struct{}
}

func (c *blockingCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	n := c.running.Add(1)
	for {
		p := c.peak.Load()
		if n <= p || c.peak.CompareAndSwap(p, n) {
			break
		}
	}
	defer c.running.Add(-1)
	<-c.release
	return raw, nil, nil
}

func (c *blockingCreds) Clone() credentials.TransportCredentials { return c }

// pipeConn is one end of an in-memory connection, closed at the end of
// the test.
func pipeConn(t *testing.T) net.Conn {
	a, b := net.Pipe()
	t.Cleanup(func() {
		_ = a.Close()
		_ = b.Close()
	})
	return a
}

// At most n handshakes run at once; the others start as slots free up,
// and all finish.
func TestHandshakes_BoundsConcurrentHandshakes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		inner := &blockingCreds{release: make(chan struct{})}
		creds := Handshakes(inner, 3, time.Hour, time.Hour)
		var wg sync.WaitGroup
		for range 10 {
			wg.Go(func() {
				if _, _, err := creds.ServerHandshake(pipeConn(t)); err != nil {
					t.Errorf("ServerHandshake: %v", err)
				}
			})
		}
		synctest.Wait()
		if got := inner.running.Load(); got != 3 {
			t.Fatalf("%d handshakes run at once, want 3 (the rest waiting)", got)
		}
		close(inner.release)
		wg.Wait()
		if got := inner.peak.Load(); got != 3 {
			t.Errorf("peak %d handshakes at once, want 3", got)
		}
	})
}

// A handshake that stalls keeps its slot for hold only: the next one
// starts then, though the first never finished.
func TestHandshakes_StalledHandshakeGivesUpItsSlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		inner := &blockingCreds{release: make(chan struct{})}
		creds := Handshakes(inner, 1, 500*time.Millisecond, time.Hour)
		start := time.Now()
		go func() { _, _, _ = creds.ServerHandshake(pipeConn(t)) }()
		synctest.Wait()
		second := make(chan time.Duration)
		go func() {
			_, _, _ = creds.ServerHandshake(pipeConn(t))
			second <- time.Since(start)
		}()
		synctest.Wait()
		if got := inner.running.Load(); got != 1 {
			t.Fatalf("%d handshakes running before the hold ran out, want 1", got)
		}
		time.Sleep(500 * time.Millisecond) // fake time, inside the bubble
		synctest.Wait()
		if got := inner.running.Load(); got != 2 {
			t.Fatalf("%d handshakes running once the stalled one held its slot for 500ms, want 2", got)
		}
		close(inner.release)
		<-second
	})
}

// A connection that waits its whole wait for a slot fails, as a
// timeout, and never reaches the inner handshake.
func TestHandshakes_WaitRunsOutAsTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		inner := &blockingCreds{release: make(chan struct{})}
		creds := Handshakes(inner, 1, time.Hour, 2*time.Second)
		go func() { _, _, _ = creds.ServerHandshake(pipeConn(t)) }()
		synctest.Wait()
		start := time.Now()
		_, _, err := creds.ServerHandshake(pipeConn(t))
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("ServerHandshake after waiting = %v, want a net.Error timeout", err)
		}
		if waited := time.Since(start); waited != 2*time.Second {
			t.Errorf("gave up after %v, want the 2s wait", waited)
		}
		if got := inner.peak.Load(); got != 1 {
			t.Errorf("inner handshakes started: %d, want 1 (the refused one never starts)", got)
		}
		close(inner.release)
	})
}

// readingCreds is server credentials whose handshake reads until the
// connection's deadline, and records when that came.
type readingCreds struct {
	credentials.TransportCredentials
	timedOut chan time.Time
}

func (c *readingCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	_, err := raw.Read(make([]byte, 1))
	c.timedOut <- time.Now()
	return nil, nil, err
}

func (c *readingCreds) Clone() credentials.TransportCredentials { return c }

// Time spent waiting for a slot does not count against the handshake:
// one that waited 1.5 s of a 2 s wait still gets 2 s to finish.
func TestHandshakes_WaitingDoesNotShortenTheHandshake(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		blocker := &blockingCreds{release: make(chan struct{})}
		inner := &readingCreds{timedOut: make(chan time.Time, 1)}
		gate := Handshakes(blocker, 1, time.Hour, 2*time.Second).(*gatedCreds)
		creds := &gatedCreds{TransportCredentials: inner, slots: gate.slots, hold: gate.hold, wait: gate.wait}
		go func() { _, _, _ = gate.ServerHandshake(pipeConn(t)) }()
		synctest.Wait()
		start := time.Now()
		go func() { _, _, _ = creds.ServerHandshake(pipeConn(t)) }()
		time.Sleep(1500 * time.Millisecond)
		close(blocker.release)
		if got := (<-inner.timedOut).Sub(start); got != 3500*time.Millisecond {
			t.Errorf("the handshake's deadline came %v after it began waiting, want 3.5s (1.5s in line, then the whole 2s)", got)
		}
	})
}
