package session

import (
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc"

	"github.com/turbulence-sre/turbulence/agent/inject"
	"github.com/turbulence-sre/turbulence/agent/internal/fakecontroller"
	"github.com/turbulence-sre/turbulence/agent/killswitch"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Invariant 2 has a corner that only a test of the Redirect can guard: an
// agent bounced between followers that cannot reach the leader hears from
// controllers all the time, yet from no leader, and must still revert at
// lease expiry. The two tests below cover the two places the agent reads a
// Redirect: as the first answer to its Hello (connect) and in the middle
// of a session (receive).

// countingReverter counts lease expiries that reverted.
type countingReverter struct{ n atomic.Int32 }

func (c *countingReverter) RevertAll(string) int { c.n.Add(1); return 0 }

// redirectStream is a Connect stream whose controller sends one Redirect
// and then ends; only Recv is used by receive.
type redirectStream struct {
	grpc.BidiStreamingClient[turbulencev1.AgentMessage, turbulencev1.ControllerMessage]
	sent bool
}

func (r *redirectStream) Recv() (*turbulencev1.ControllerMessage, error) {
	if r.sent {
		return nil, io.EOF
	}
	r.sent = true
	return &turbulencev1.ControllerMessage{Msg: &turbulencev1.ControllerMessage_Redirect{
		Redirect: &turbulencev1.Redirect{LeaderAddress: "198.18.0.9:7443"}}}, nil
}

// TestReceive_MidSessionRedirectRenewsNoLease: the leader named a lease of
// one second; 900 ms later a Redirect arrives on the session (the node
// stepped down). At 1.1 s the lease must have expired: a Redirect that
// renewed it would push expiry to 1.9 s. The clock is synctest's, so the
// figures are exact.
func TestReceive_MidSessionRedirectRenewsNoLease(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		rev := &countingReverter{}
		lease := killswitch.NewLease(slog.New(slog.DiscardHandler), rev)
		defer lease.Stop()
		lease.Renew(time.Second) // the leader's Welcome
		s := &Session{cfg: Config{Lease: lease}, log: slog.New(slog.DiscardHandler)}

		time.Sleep(900 * time.Millisecond)
		err := s.receive(t.Context(), &redirectStream{}, make(chan *turbulencev1.ControllerMessage, 1), make(chan time.Duration, 1))
		if re, ok := errors.AsType[*redirectError](err); !ok || re.leader != "198.18.0.9:7443" {
			t.Fatalf("receive = %v, want the redirect to 198.18.0.9:7443", err)
		}
		time.Sleep(200 * time.Millisecond)
		synctest.Wait()
		if got := lease.Expired(); got != 1 {
			t.Fatalf("lease expiries 1.1 s after the leader's last word = %d, want 1: the Redirect renewed the lease", got)
		}
		if rev.n.Load() != 1 {
			t.Errorf("RevertAll calls = %d, want 1", rev.n.Load())
		}
	})
}

// TestSession_BouncingBetweenFollowersLetsTheLeaseExpire: two followers
// that name each other as leader (neither reaches the real one) answer
// every Hello with a Redirect. The agent keeps talking to controllers but
// never to a leader, so its lease (500 ms here, as a leader had set it)
// must expire. If a Redirect renewed the lease, the bouncing would keep it
// alive for ever and the wait below would time out.
func TestSession_BouncingBetweenFollowersLetsTheLeaseExpire(t *testing.T) {
	t.Parallel()
	pki, err := tlsutil.EnsureDevPKI(t.TempDir(), "agent-under-test")
	if err != nil {
		t.Fatal(err)
	}
	a := fakecontroller.Start(t, pki, fakecontroller.Options{})
	b := fakecontroller.Start(t, pki, fakecontroller.Options{RedirectTo: a.Addr})
	a.SetRedirect(b.Addr)

	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	m := inject.NewManager(log)
	lease := killswitch.NewLease(log, m)
	lease.Renew(500 * time.Millisecond) // the TTL the lost leader named
	s, err := New(Config{
		Controllers: []string{a.Addr, b.Addr},
		TLS:         pki.Agent,
		AgentID:     "agent-under-test",
		Manager:     m,
		Lease:       lease,
		Logger:      log,
		BackoffMin:  10 * time.Millisecond,
		BackoffMax:  50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	runSession(t, s, m, lease)

	// Bouncing has started once both followers were asked.
	a.WaitHello(10 * time.Second)
	b.WaitHello(10 * time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for lease.Expired() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("lease of 500 ms never expired in 10 s of Redirects: a follower's Redirect renewed it")
		}
		// Drain the Hellos so the fakes never block on a full channel.
		a.DrainHellos()
		b.DrainHellos()
		time.Sleep(5 * time.Millisecond) // polling interval
	}
	if a.Sessions()+b.Sessions() != 0 {
		t.Errorf("welcomed sessions = %d, want 0 (both only redirect)", a.Sessions()+b.Sessions())
	}
}
