package session

import (
	"math/rand/v2"
	"time"
)

// backoff is capped exponential backoff with jitter: each wait is drawn
// from [cur/2, cur], cur doubling from min to max. Jitter spreads a fleet's
// reconnects after a controller failover.
type backoff struct {
	min, max time.Duration
	cur      time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(b.cur*2, b.max)
	}
	half := b.cur / 2
	return half + rand.N(b.cur-half+1)
}

func (b *backoff) reset() { b.cur = 0 }
