// Package backoff is the agent's reconnect backoff: capped exponential
// with jitter. It lives in internal/ so that the controller's tests can
// name the agent's figures (the simulated agents of test/fleetsim, which
// controller/controllertest.FollowingAgent wraps, run the agent's own
// session and so retry with it).
package backoff

import (
	"math/rand/v2"
	"time"
)

// The agent's defaults (agent/session.DefaultBackoffMin and Max).
const (
	DefaultMin = 100 * time.Millisecond
	DefaultMax = 5 * time.Second
)

// Backoff is capped exponential backoff with jitter: each wait is drawn
// from [cur/2, cur], cur doubling from Min to Max. Jitter spreads a
// fleet's reconnects after a controller failover. The zero value waits
// nothing; set Min and Max. Not safe for concurrent use.
type Backoff struct {
	Min, Max time.Duration
	cur      time.Duration
}

// Next returns the next wait.
func (b *Backoff) Next() time.Duration {
	if b.cur == 0 {
		b.cur = b.Min
	} else {
		b.cur = min(b.cur*2, b.Max)
	}
	half := b.cur / 2
	return half + rand.N(b.cur-half+1)
}

// Reset makes the next wait the shortest again.
func (b *Backoff) Reset() { b.cur = 0 }
