package controllertest

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/turbulence-sre/turbulence/internal/backoff"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// maxRedirectsInARow is the real agent's hop limit for Redirect chains
// (agent/session): after it, the agent backs off.
const maxRedirectsInARow = 3

// FollowingAgent is a light fake agent for fleet-sized tests and
// benchmarks: like the real agent's session it dials the controllers in
// turn, follows Redirects to the leader, answers every message with
// nothing but heartbeats, and reconnects when its session ends. It runs
// no faults. Between attempts it waits as the real agent does
// (agent/session.Run): every configured address in a round at once, a
// Redirect followed at once (up to the same hop limit, never to an
// address that failed in the round), then the agent's own backoff
// (internal/backoff, 100 ms doubling to 5 s with jitter), reset by a
// welcomed session. Start it with StartFollowingAgent; Stop ends it.
type FollowingAgent struct {
	id       string
	addrs    []string
	creds    credentials.TransportCredentials
	attached atomic.Pointer[string]
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	// The lease as a real agent keeps it: renewed by every message a
	// leader sends (protocol §6). maxGap is the longest time between two
	// renewals since ResetLeaseGap: a real agent with a lease TTL shorter
	// than it would have reverted its faults.
	leaseMu   sync.Mutex
	lastRenew time.Time
	maxGap    time.Duration
}

// StartFollowingAgent starts a fake agent named id (its certificate files
// must name it) that follows the leader among addrs.
func StartFollowingAgent(id string, addrs []string, files tlsutil.Files) (*FollowingAgent, error) {
	tc, err := tlsutil.ClientConfig(files, "")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &FollowingAgent{id: id, addrs: addrs, creds: credentials.NewTLS(tc), cancel: cancel}
	a.wg.Go(func() { a.run(ctx) })
	return a, nil
}

// Attached is the address of the controller that welcomed the agent's
// current session, "" between sessions.
func (a *FollowingAgent) Attached() string {
	if p := a.attached.Load(); p != nil {
		return *p
	}
	return ""
}

// MaxLeaseGap is the longest time the agent went without a lease renewal
// since it started or since the last ResetLeaseGap, counting the time
// since the last renewal too.
func (a *FollowingAgent) MaxLeaseGap() time.Duration {
	a.leaseMu.Lock()
	defer a.leaseMu.Unlock()
	if a.lastRenew.IsZero() {
		return a.maxGap
	}
	return max(a.maxGap, time.Since(a.lastRenew))
}

// ResetLeaseGap starts a new MaxLeaseGap measurement from now.
func (a *FollowingAgent) ResetLeaseGap() {
	a.leaseMu.Lock()
	defer a.leaseMu.Unlock()
	a.maxGap = 0
	if !a.lastRenew.IsZero() {
		a.lastRenew = time.Now()
	}
}

func (a *FollowingAgent) renewed() {
	now := time.Now()
	a.leaseMu.Lock()
	defer a.leaseMu.Unlock()
	if !a.lastRenew.IsZero() {
		a.maxGap = max(a.maxGap, now.Sub(a.lastRenew))
	}
	a.lastRenew = now
}

// Stop ends the agent and waits for it.
func (a *FollowingAgent) Stop() {
	a.cancel()
	a.wg.Wait()
}

func (a *FollowingAgent) run(ctx context.Context) {
	bo := backoff.Backoff{Min: backoff.DefaultMin, Max: backoff.DefaultMax}
	n := len(a.addrs)
	var (
		i, redirects, tried int
		next                string
		failed              = map[string]bool{}
	)
	for ctx.Err() == nil {
		addr := next
		if addr == "" {
			addr = a.addrs[i%n]
			i++
			tried++
		}
		next = ""
		welcomed, redirect := a.session(ctx, addr)
		a.attached.Store(nil)
		if welcomed {
			bo.Reset()
			redirects, tried = 0, 0
			clear(failed)
		}
		switch {
		case redirect != "" && failed[redirect]:
		case redirect != "":
			if redirects++; redirects <= maxRedirectsInARow {
				next = redirect
				continue
			}
			redirects = 0
		case !welcomed:
			failed[addr] = true
		}
		if tried < n && !welcomed {
			continue
		}
		if !welcomed {
			tried = 0
			clear(failed)
		}
		t := time.NewTimer(bo.Next())
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
}

// session runs one session and reports whether it was welcomed, and a
// leader address it was redirected to, if any.
func (a *FollowingAgent) session(ctx context.Context, addr string) (welcomed bool, redirect string) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(a.creds))
	if err != nil {
		return false, ""
	}
	defer func() { _ = conn.Close() }()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := turbulencev1.NewAgentServiceClient(conn).Connect(sctx)
	if err != nil {
		return false, ""
	}
	hello := &turbulencev1.Hello{AgentId: a.id, Capabilities: &turbulencev1.Capabilities{FaultKinds: []string{"cpu"}}}
	if err := st.Send(&turbulencev1.AgentMessage{Msg: &turbulencev1.AgentMessage_Hello{Hello: hello}}); err != nil {
		return false, ""
	}
	first, err := st.Recv()
	if err != nil {
		return false, ""
	}
	if r := first.GetRedirect(); r != nil {
		return false, r.GetLeaderAddress()
	}
	if first.GetWelcome() == nil {
		return false, ""
	}
	a.attached.Store(&addr)
	a.renewed()
	interval := first.GetWelcome().GetHeartbeatInterval().AsDuration()
	if interval <= 0 {
		interval = time.Second
	}
	// recvDone closes when the stream ends, whatever ended it.
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		for {
			if _, err := st.Recv(); err != nil {
				return
			}
			a.renewed() // only a leader holds a welcomed session
		}
	}()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			cancel()
			<-recvDone
			return true, ""
		case <-recvDone:
			// Session lost (leader gone, leadership lost): reconnect.
			return true, ""
		case <-tick.C:
			hb := &turbulencev1.AgentMessage{Msg: &turbulencev1.AgentMessage_Heartbeat{Heartbeat: &turbulencev1.Heartbeat{}}}
			if err := st.Send(hb); err != nil {
				cancel()
				<-recvDone
				return true, ""
			}
		}
	}
}
