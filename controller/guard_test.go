package controller_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/turbulence-sre/turbulence/controller"
	"github.com/turbulence-sre/turbulence/controller/controllertest"
	"github.com/turbulence-sre/turbulence/internal/connlimit"
	"github.com/turbulence-sre/turbulence/internal/testutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// TestGRPCPort_Guards: the gRPC port closes a connection that never
// completes its TLS handshake once the handshake deadline passes, and
// holds at most its per-source cap from one address while calls from
// another keep working.
func TestGRPCPort_Guards(t *testing.T) {
	t.Parallel()
	s := controllertest.NewServer(t, func(c *controller.Config) {
		c.GRPCGuard.HandshakeTimeout = 300 * time.Millisecond
		c.GRPCGuard.Limits.PerSource = 3
	})
	dial := func(src string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	closed := func(c net.Conn, within time.Duration) bool {
		_ = c.SetReadDeadline(time.Now().Add(within))
		_, err := c.Read(make([]byte, 1))
		var ne net.Error
		return err != nil && (!errors.As(err, &ne) || !ne.Timeout())
	}
	// Three silent connections from 127.0.0.5 fill its share; a fourth
	// is closed at once.
	silent := []net.Conn{dial("127.0.0.5"), dial("127.0.0.5"), dial("127.0.0.5")}
	testutil.WaitFor(t, 10*time.Second, func() (bool, string) {
		_, st := s.Controller.ConnStats()
		return st.Open >= 3, "three connections held"
	})
	if !closed(dial("127.0.0.5"), 5*time.Second) {
		t.Fatal("fourth connection from one source kept, want it closed (per-source cap 3)")
	}
	if _, st := s.Controller.ConnStats(); st.Refused[connlimit.ReasonPerSource] != 1 {
		t.Errorf("gRPC port stats %+v, want one per-source refusal", st)
	}
	// turbctl, from 127.0.0.1, is not affected.
	if err := haltStatusOnNewConn(t, s); err != nil {
		t.Fatalf("gRPC call from another source: %v", err)
	}
	// The silent ones never sent a ClientHello: closed at the deadline.
	for i, c := range silent {
		if !closed(c, 10*time.Second) {
			t.Fatalf("silent connection %d not closed after the handshake deadline", i+1)
		}
	}
}

// haltStatusOnNewConn makes one ControlService call on a new connection,
// as a turbctl command does.
func haltStatusOnNewConn(t testing.TB, s *controllertest.Server) error {
	t.Helper()
	conn := s.Dial(t, s.PKI.Admin)
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := turbulencev1.NewControlServiceClient(conn).GetHaltStatus(ctx, &turbulencev1.GetHaltStatusRequest{})
	return err
}

// TestGRPCPort_StreamsPerConnectionCapped: past MaxStreams calls in
// flight on one connection, the next waits (here: until its deadline)
// instead of adding load; once a stream ends, it goes through.
func TestGRPCPort_StreamsPerConnectionCapped(t *testing.T) {
	t.Parallel()
	s := controllertest.NewServer(t, func(c *controller.Config) { c.GRPCGuard.MaxStreams = 2 })
	conn := s.Dial(t, s.PKI.Admin)
	api := turbulencev1.NewControlServiceClient(conn)
	// A first call: the connection is up and the server's settings,
	// its stream cap among them, are known to the client.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	_, err := api.GetHaltStatus(ctx, &turbulencev1.GetHaltStatusRequest{})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	// Hold both streams with event watches, which stay open.
	var cancels []context.CancelFunc
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		t.Cleanup(cancel)
		cancels = append(cancels, cancel)
		if _, err := api.WatchEvents(ctx, &turbulencev1.WatchEventsRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel = context.WithTimeout(context.Background(), 2*time.Second)
	_, err = api.GetHaltStatus(ctx, &turbulencev1.GetHaltStatusRequest{})
	cancel()
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("third call on a connection capped at 2 streams = %v, want it held until its deadline", err)
	}
	cancels[0]()
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := api.GetHaltStatus(ctx, &turbulencev1.GetHaltStatusRequest{}); err != nil {
		t.Fatalf("call after a stream ended: %v", err)
	}
}
