package session

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/turbulence-sre/turbulence/agent/inject"
	"github.com/turbulence-sre/turbulence/agent/internal/fakecontroller"
	"github.com/turbulence-sre/turbulence/agent/killswitch"
	"github.com/turbulence-sre/turbulence/internal/testutil"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startSession runs a Session against addrs until the test ends.
func startSession(t *testing.T, pki tlsutil.DevPKI, addrs ...string) *inject.Manager {
	t.Helper()
	return startSessionBackoff(t, pki, 10*time.Millisecond, 50*time.Millisecond, addrs...)
}

// startSessionBackoff is startSession with the given reconnect backoff.
func startSessionBackoff(t *testing.T, pki tlsutil.DevPKI, backoffMin, backoffMax time.Duration, addrs ...string) *inject.Manager {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	m := inject.NewManager(log)
	lease := killswitch.NewLease(log, m)
	s, err := New(Config{
		Controllers: addrs,
		TLS:         pki.Agent,
		AgentID:     "agent-under-test",
		Labels:      map[string]string{"rack": "r1"},
		Facts:       &turbulencev1.HostFacts{Hostname: "h"},
		Manager:     m,
		Lease:       lease,
		Logger:      log,
		BackoffMin:  backoffMin,
		BackoffMax:  backoffMax,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	runSession(t, s, m, lease)
	return m
}

// runSession runs s until the test ends, then stops its lease and
// reverts what its Manager holds, as the agent does.
func runSession(t *testing.T, s *Session, m *inject.Manager, lease *killswitch.Lease) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = s.Run(ctx) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		lease.Stop()
		m.Close(inject.ReasonAgentStopping)
	})
}

func TestSession_FollowsRedirectToLeader(t *testing.T) {
	t.Parallel()
	pki, err := tlsutil.EnsureDevPKI(t.TempDir(), "agent-under-test")
	if err != nil {
		t.Fatal(err)
	}
	leader := fakecontroller.Start(t, pki, fakecontroller.Options{})
	follower := fakecontroller.Start(t, pki, fakecontroller.Options{RedirectTo: leader.Addr})
	startSession(t, pki, follower.Addr)

	h := follower.WaitHello(10 * time.Second)
	if h.GetAgentId() != "agent-under-test" || h.GetLabels()["rack"] != "r1" {
		t.Errorf("Hello to follower = %v", h)
	}
	leader.WaitHello(10 * time.Second)
	leader.WaitFor(10*time.Second, "heartbeat on the leader", func(m *turbulencev1.AgentMessage) bool {
		return m.GetHeartbeat() != nil
	})
	if follower.Sessions() != 0 || leader.Sessions() < 1 {
		t.Errorf("sessions follower=%d leader=%d, want 0 and >= 1", follower.Sessions(), leader.Sessions())
	}
}

func TestSession_ReconnectsToNextAddress(t *testing.T) {
	t.Parallel()
	pki, err := tlsutil.EnsureDevPKI(t.TempDir(), "agent-under-test")
	if err != nil {
		t.Fatal(err)
	}
	up := fakecontroller.Start(t, pki, fakecontroller.Options{})
	// The first address refuses connections; the agent moves on.
	startSession(t, pki, "127.0.0.1:1", up.Addr)
	up.WaitHello(10 * time.Second)
}

// TestSession_DeadLeaderNamedByFollowersCostsNoBackoff: after a leader
// dies, followers keep naming it until their election timeout. The agent
// must not wait out its backoff on that address: it tries every configured
// controller in the round and does not follow a redirect to an address
// that already failed. The backoff here is an hour, so any wait before the
// live leader is reached would fail the test.
func TestSession_DeadLeaderNamedByFollowersCostsNoBackoff(t *testing.T) {
	t.Parallel()
	pki, err := tlsutil.EnsureDevPKI(t.TempDir(), "agent-under-test")
	if err != nil {
		t.Fatal(err)
	}
	const deadLeader = "127.0.0.1:1" // refuses connections
	followerA := fakecontroller.Start(t, pki, fakecontroller.Options{RedirectTo: deadLeader})
	followerB := fakecontroller.Start(t, pki, fakecontroller.Options{RedirectTo: deadLeader})
	newLeader := fakecontroller.Start(t, pki, fakecontroller.Options{})
	startSessionBackoff(t, pki, time.Hour, time.Hour, followerA.Addr, deadLeader, followerB.Addr, newLeader.Addr)

	followerA.WaitHello(10 * time.Second)
	followerB.WaitHello(10 * time.Second)
	newLeader.WaitHello(10 * time.Second)
	newLeader.WaitFor(10*time.Second, "heartbeat on the new leader", func(m *turbulencev1.AgentMessage) bool {
		return m.GetHeartbeat() != nil
	})
}

func TestSession_WelcomeHaltedHaltsAndResumeLifts(t *testing.T) {
	t.Parallel()
	pki, err := tlsutil.EnsureDevPKI(t.TempDir(), "agent-under-test")
	if err != nil {
		t.Fatal(err)
	}
	c := fakecontroller.Start(t, pki, fakecontroller.Options{Welcome: &turbulencev1.Welcome{Halted: true}})
	m := startSession(t, pki, c.Addr)
	c.WaitHello(10 * time.Second)
	c.WaitFor(10*time.Second, "heartbeat", func(am *turbulencev1.AgentMessage) bool { return am.GetHeartbeat() != nil })
	if !m.Halted() {
		t.Fatalf("agent not halted after Welcome{halted: true}")
	}
	c.Send(&turbulencev1.ControllerMessage{Msg: &turbulencev1.ControllerMessage_Resume{Resume: &turbulencev1.ResumeAgent{}}})
	deadline := time.Now().Add(10 * time.Second)
	for m.Halted() {
		if time.Now().After(deadline) {
			t.Fatal("ResumeAgent did not lift the halt")
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
}

// TestSession_RefusesServerWithOperatorCertificate: a server whose
// certificate chains to the fleet's CA but carries the operator role
// (and, as turbctl once allowed, an IP SAN) is not a controller. The
// agent must never send it a Hello, let alone take commands from it
// (issue 13, finding 5). A real controller next in the list is reached.
func TestSession_RefusesServerWithOperatorCertificate(t *testing.T) {
	t.Parallel()
	pki, err := tlsutil.EnsureDevPKI(t.TempDir(), "agent-under-test")
	if err != nil {
		t.Fatal(err)
	}
	rogueCert := testutil.IssueRogueServerCert(t, pki, tlsutil.Identity{Role: tlsutil.RoleOperator, Name: "mallory"})
	rogue := fakecontroller.Start(t, pki, fakecontroller.Options{ServerCert: &rogueCert})
	real := fakecontroller.Start(t, pki, fakecontroller.Options{})
	startSession(t, pki, rogue.Addr, real.Addr)

	// The real controller gets the Hello after the rogue was tried (the
	// agent tries the addresses in order), so by then the rogue had its
	// chance; it must have received nothing.
	real.WaitHello(10 * time.Second)
	real.WaitFor(10*time.Second, "heartbeat on the real controller", func(m *turbulencev1.AgentMessage) bool {
		return m.GetHeartbeat() != nil
	})
	if n := rogue.Sessions(); n != 0 {
		t.Errorf("rogue operator-certificate server got %d sessions, want 0", n)
	}
}
