package controllertest

import (
	"context"
	"time"

	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	"github.com/turbulence-sre/turbulence/test/fleetsim"
)

// followerStopTimeout bounds a FollowingAgent's last heartbeat at Stop.
const followerStopTimeout = 5 * time.Second

// FollowingAgent is an agent for fleet-sized tests and benchmarks of the
// controller: one simulated agent of test/fleetsim, that is the real
// agent's session (it dials the controllers in turn, follows Redirects to
// the leader with the agent's hop limit, reconnects with the agent's
// backoff), Manager and lease, over a recording injector instead of the
// host. It advertises the cpu kind only. Start it with
// StartFollowingAgent; Stop ends it.
type FollowingAgent struct {
	a *fleetsim.Agent
}

// StartFollowingAgent starts an agent named id (its certificate files
// must name it) that follows the leader among addrs.
func StartFollowingAgent(id string, addrs []string, files tlsutil.Files) (*FollowingAgent, error) {
	a, err := fleetsim.StartAgent(fleetsim.AgentConfig{ID: id, Controllers: addrs, TLS: files, Kinds: []string{"cpu"}})
	if err != nil {
		return nil, err
	}
	return &FollowingAgent{a: a}, nil
}

// Attached is the address of the controller that welcomed the agent's
// current session, "" between sessions.
func (a *FollowingAgent) Attached() string { return a.a.Attached() }

// MaxLeaseGap is the longest time the agent went without a lease renewal
// since its first Welcome or since the last ResetLeaseGap, counting the
// time since the last renewal too.
func (a *FollowingAgent) MaxLeaseGap() time.Duration { return a.a.MaxLeaseGap() }

// ResetLeaseGap starts a new MaxLeaseGap measurement from now.
func (a *FollowingAgent) ResetLeaseGap() { a.a.ResetLeaseGap() }

// Stop ends the agent as the real agent stops and waits for it.
func (a *FollowingAgent) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), followerStopTimeout)
	defer cancel()
	a.a.Close(ctx)
}
