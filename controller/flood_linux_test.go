//go:build linux

package controller_test

import (
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/controller"
	"github.com/turbulence-sre/turbulence/controller/controllertest"
	"github.com/turbulence-sre/turbulence/controller/raftnode"
	"github.com/turbulence-sre/turbulence/internal/connlimit"
	"github.com/turbulence-sre/turbulence/internal/testutil"
)

// floodSources is how many loopback source addresses a flood comes from
// (127.0.1.1 onwards): more than the raft port's total cap divided by its
// per-source cap, so that both caps are reached.
const floodSources = 100

// raiseNoFile makes sure the test process may open want descriptors and
// returns how many it may (less than want when the limit cannot be
// raised; the caller then floods with fewer). The old limit is restored
// when the test ends.
func raiseNoFile(t testing.TB, want uint64) uint64 {
	t.Helper()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatalf("getrlimit: %v", err)
	}
	if old.Cur >= want {
		return old.Cur
	}
	raised := syscall.Rlimit{Cur: want, Max: max(want, old.Max)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
		// Without the right to raise the hard limit, use what there is.
		raised = syscall.Rlimit{Cur: old.Max, Max: old.Max}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
			return old.Cur
		}
	}
	t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
	return raised.Cur
}

// floodIdle opens n plain TCP connections to addr from floodSources
// loopback addresses and sends nothing on them: no TLS, no certificate.
// They are closed when the test ends.
func floodIdle(t testing.TB, addr string, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			_ = c.Close()
		}
	})
	for i := range n {
		src := net.IPv4(127, 0, 1, byte(1+i%floodSources))
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 10 * time.Second}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			// The test process has room for the whole flood plus a
			// margin: running out means the controller's raft port took
			// the margin. Go on, to show what that does to gRPC.
			t.Errorf("idle connection %d of %d to the raft port: %v (the controller holds the descriptors)", i+1, n, err)
			break
		}
		conns = append(conns, c)
	}
	return conns
}

// closedByPeer reports whether the far side has closed c.
func closedByPeer(c net.Conn, deadline time.Time) bool {
	_ = c.SetReadDeadline(deadline)
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && (!errors.As(err, &ne) || !ne.Timeout())
}

// TestRaftPortFlood_GRPCKeepsServing is issue 13's finding 3: 20,000 idle
// TCP connections to the raft port, without a certificate. Before the
// guards the controller held every one, ran out of descriptors and
// stopped answering turbctl on its gRPC port too. Now the raft port
// holds at most its cap (the rest are closed at once), gRPC calls on new
// connections succeed while the flood is on, and the connections held
// are closed when their handshake deadline passes.
//
// The test process holds the flood's client side, so it raises its own
// RLIMIT_NOFILE to the flood plus a margin of 4,096 (root may raise the
// hard limit); the controller in the same process then has the margin
// only, which an unguarded raft port exhausts.
func TestRaftPortFlood_GRPCKeepsServing(t *testing.T) {
	const margin = 4096
	n := 20000
	if got := raiseNoFile(t, uint64(n+margin)); got < uint64(n+margin) {
		n = int(got) - margin
		if n < 2000 {
			t.Skipf("RLIMIT_NOFILE %d cannot be raised; too low for a flood test", got)
		}
		t.Logf("RLIMIT_NOFILE could be raised to %d only: flooding with %d connections", got, n)
	}
	const handshake = 2 * time.Second
	s := controllertest.NewServer(t, func(c *controller.Config) {
		c.RaftGuard.HandshakeTimeout = handshake
	})
	flood := floodIdle(t, s.Controller.RaftAddr(), n)
	n = len(flood)

	for i := range 3 {
		if err := haltStatusOnNewConn(t, s); err != nil {
			t.Fatalf("gRPC call %d on a new connection during a flood of %d idle raft connections: %v", i+1, n, err)
		}
	}
	raftStats, _ := s.Controller.ConnStats()
	if raftStats.Open > raftnode.DefaultRaftMaxConns {
		t.Errorf("raft port holds %d connections, over its cap of %d", raftStats.Open, raftnode.DefaultRaftMaxConns)
	}
	t.Logf("during the flood: raft port %+v", raftStats)

	// The connections held are closed once the handshake deadline has
	// passed; every connection of the flood ends up closed by the
	// controller.
	testutil.WaitFor(t, 10*handshake, func() (bool, string) {
		st, _ := s.Controller.ConnStats()
		return st.Open == 0, fmt.Sprintf("raft port still holds %d connections", st.Open)
	})
	deadline := time.Now().Add(10 * time.Second)
	for i, c := range flood {
		if !closedByPeer(c, deadline) {
			t.Fatalf("flood connection %d of %d still open", i+1, n)
		}
	}
	raftStats, _ = s.Controller.ConnStats()
	refused := raftStats.Refused[connlimit.ReasonTotal] + raftStats.Refused[connlimit.ReasonPerSource]
	if held := uint64(n) - refused; held > uint64(n) || refused == 0 {
		t.Errorf("refused %d of %d connections, want most of them", refused, n)
	}
	if err := haltStatusOnNewConn(t, s); err != nil {
		t.Fatalf("gRPC call after the flood: %v", err)
	}
}

// BenchmarkRaftPortFlood measures what a flood of idle connections to the
// raft port costs the controller: per iteration it opens floodBenchConns
// idle connections from floodSources addresses, makes one gRPC call on a
// new connection while they are open, and closes them. Reported: the raft
// connections the controller held at the peak (its cap), those it
// refused, and the duration of the gRPC call under the flood.
//
//	go test -run '^$' -bench BenchmarkRaftPortFlood -benchtime 5x ./controller/
func BenchmarkRaftPortFlood(b *testing.B) {
	const floodBenchConns = 10000
	if got := raiseNoFile(b, floodBenchConns+4096); got < floodBenchConns+4096 {
		b.Skipf("RLIMIT_NOFILE %d: too low for %d connections", got, floodBenchConns)
	}
	s := controllertest.NewServer(b, nil)
	var held, refused float64
	var call time.Duration
	for b.Loop() {
		before, _ := s.Controller.ConnStats()
		flood := floodIdle(b, s.Controller.RaftAddr(), floodBenchConns)
		st, _ := s.Controller.ConnStats()
		held = max(held, float64(st.Open))
		refused += float64(st.Refused[connlimit.ReasonTotal] + st.Refused[connlimit.ReasonPerSource] -
			before.Refused[connlimit.ReasonTotal] - before.Refused[connlimit.ReasonPerSource])
		start := time.Now()
		if err := haltStatusOnNewConn(b, s); err != nil {
			b.Fatalf("gRPC call during the flood: %v", err)
		}
		call += time.Since(start)
		for _, c := range flood {
			_ = c.Close()
		}
		testutil.WaitFor(b, time.Minute, func() (bool, string) {
			st, _ := s.Controller.ConnStats()
			return st.Open == 0, "raft connections of the flood closed"
		})
	}
	b.ReportMetric(held, "raft-conns-held")
	b.ReportMetric(refused/float64(b.N), "refused/op")
	b.ReportMetric(float64(call.Microseconds())/1000/float64(b.N), "grpc-call-ms")
}
