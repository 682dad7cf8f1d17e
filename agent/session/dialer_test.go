package session

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/agent/inject"
	"github.com/turbulence-sre/turbulence/agent/internal/fakecontroller"
	"github.com/turbulence-sre/turbulence/agent/killswitch"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
)

// TestSession_DialerOpensTheConnection: with Config.Dialer set, the
// session's connection is the one it opened (here from a chosen loopback
// source address, as test/fleetsim does), and the session runs over it.
func TestSession_DialerOpensTheConnection(t *testing.T) {
	t.Parallel()
	pki, err := tlsutil.EnsureDevPKI(t.TempDir(), "agent-under-test")
	if err != nil {
		t.Fatal(err)
	}
	c := fakecontroller.Start(t, pki, fakecontroller.Options{})
	const source = "127.0.0.77"
	var (
		mu    sync.Mutex
		local []string
	)
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}}
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	m := inject.NewManager(log)
	lease := killswitch.NewLease(log, m)
	s, err := New(Config{
		Controllers: []string{c.Addr},
		TLS:         pki.Agent,
		AgentID:     "agent-under-test",
		Manager:     m,
		Lease:       lease,
		Logger:      log,
		Dialer: func(ctx context.Context, addr string) (net.Conn, error) {
			conn, err := d.DialContext(ctx, "tcp", addr)
			if err == nil {
				mu.Lock()
				local = append(local, conn.LocalAddr().(*net.TCPAddr).IP.String())
				mu.Unlock()
			}
			return conn, err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	runSession(t, s, m, lease)

	c.WaitHello(10 * time.Second)
	mu.Lock()
	defer mu.Unlock()
	if len(local) == 0 {
		t.Fatal("the session reached the controller without calling Config.Dialer")
	}
	for _, ip := range local {
		if ip != source {
			t.Errorf("connection from %s, want %s (the Dialer's)", ip, source)
		}
	}
}
