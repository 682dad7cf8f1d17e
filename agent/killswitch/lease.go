package killswitch

import (
	"log/slog"
	"sync"
	"time"
)

// DefaultTTL is the lease TTL until a controller names one.
const DefaultTTL = 15 * time.Second

// Reason is the reason faults end with when the lease expires.
const Reason = "lease expired"

// Reverter ends every fault the agent holds; *inject.Manager is one.
type Reverter interface {
	RevertAll(reason string) int
}

// Lease is the watchdog. The zero value is not usable; call NewLease.
type Lease struct {
	log *slog.Logger
	rev Reverter

	mu      sync.Mutex
	ttl     time.Duration
	timer   *time.Timer
	expired int // how many times the lease expired, for tests and status
	stopped bool
	// expiresAt is when the lease runs out; lapsed is set once it has and
	// its faults were reverted, until the next renewal, so that the timer
	// and the enforcement loop (enforce.go) never expire it twice.
	expiresAt time.Time
	lapsed    bool
	// record, if set, is told when the lease now runs out, at every
	// renewal (the agent writes it down for its faults' guardians).
	record func(expiry time.Time)
}

// Option configures a Lease.
type Option func(*Lease)

// WithExpiryRecorder makes the Lease call record with the time it runs out
// at start and at every renewal, under its lock, so calls are in order.
func WithExpiryRecorder(record func(expiry time.Time)) Option {
	return func(l *Lease) { l.record = record }
}

// NewLease returns a watchdog whose clock starts at once with DefaultTTL:
// an agent that never reaches a controller still reverts what it holds.
func NewLease(logger *slog.Logger, rev Reverter, opts ...Option) *Lease {
	l := &Lease{log: logger.With("component", "killswitch"), rev: rev, ttl: DefaultTTL}
	for _, o := range opts {
		o(l)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expiresAt = time.Now().Add(l.ttl)
	l.timer = time.AfterFunc(l.ttl, l.expire)
	l.recordLocked()
	return l
}

func (l *Lease) recordLocked() {
	if l.record != nil {
		l.record(l.expiresAt)
	}
}

// Renew restarts the lease. A positive ttl replaces the current TTL (from
// Welcome or LeaseRenewal); zero keeps it.
func (l *Lease) Renew(ttl time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return
	}
	if ttl > 0 {
		l.ttl = ttl
	}
	l.expiresAt, l.lapsed = time.Now().Add(l.ttl), false
	l.timer.Reset(l.ttl)
	l.recordLocked()
}

// TTL returns the current lease TTL.
func (l *Lease) TTL() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ttl
}

// Expired returns how many times the lease expired.
func (l *Lease) Expired() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.expired
}

// Stop disarms the watchdog for good (agent shutdown reverts everything
// itself).
func (l *Lease) Stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopped = true
	l.timer.Stop()
}

// expire runs on the timer's goroutine. The timer is not re-armed: a
// fault can only be applied on a controller message, which renews.
func (l *Lease) expire() {
	l.mu.Lock()
	if l.stopped || l.lapsed {
		l.mu.Unlock()
		return
	}
	l.lapsed = true
	l.expired++
	ttl := l.ttl
	l.mu.Unlock()
	l.revertAll(ttl)
}

// expireIfOverdue expires the lease if it ran out by now and its timer
// has not acted yet: the enforcement loop's backstop (enforce.go).
func (l *Lease) expireIfOverdue(now time.Time) {
	l.mu.Lock()
	if l.stopped || l.lapsed || now.Before(l.expiresAt) {
		l.mu.Unlock()
		return
	}
	l.lapsed = true
	l.expired++
	ttl := l.ttl
	l.mu.Unlock()
	l.log.Warn("controller lease past its end and its timer has not fired; expiring it now")
	l.revertAll(ttl)
}

// revertAll ends every fault: the lease, of ttl, ran out.
func (l *Lease) revertAll(ttl time.Duration) {
	// Invariant 2: heard nothing for the TTL, so revert everything held.
	if n := l.rev.RevertAll(Reason); n > 0 {
		l.log.Warn("controller lease expired; reverted every fault", "ttl", ttl, "count", n)
	}
}
