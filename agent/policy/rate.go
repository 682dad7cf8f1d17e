package policy

import (
	"sync"
	"time"
)

// RateLimiter enforces max_new_faults_per_minute over a sliding window.
// The caller passes the time, which keeps it testable without a clock.
type RateLimiter struct {
	mu     sync.Mutex
	limit  int
	window time.Duration
	recent []time.Time
}

// NewRateLimiter allows limit events per minute.
func NewRateLimiter(limit int) *RateLimiter {
	return &RateLimiter{limit: limit, window: time.Minute}
}

// Allow records an event at now and returns nil, or a *Refusal when the
// window is full (the event is then not recorded).
func (r *RateLimiter) Allow(now time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	cut := 0
	for cut < len(r.recent) && now.Sub(r.recent[cut]) >= r.window {
		cut++
	}
	r.recent = r.recent[cut:]
	if len(r.recent) >= r.limit {
		wait := r.window - now.Sub(r.recent[0])
		return refuse("max_new_faults_per_minute", "%d new faults in the last minute, the limit; next allowed in %s", len(r.recent), wait.Round(time.Second))
	}
	r.recent = append(r.recent, now)
	return nil
}
