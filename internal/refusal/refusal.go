// Package refusal makes refusals visible: every refused call and every
// failed handshake is counted by listener and reason, and logged as one
// line saying who was refused, what they tried and why, at a bounded rate
// so that a flood cannot turn the log into a second denial of service.
//
// Before, a permission denied, an unauthenticated call, an agent claiming
// another agent's ID or a failed TLS handshake left no trace at all
// (issue 13, finding 7). The controller feeds a Recorder from its gRPC
// interceptors (Interceptors), its gRPC transport credentials
// (Credentials), the raft port's handshakes and both ports' connection
// caps, and exports the counts on its metrics endpoint (docs/metrics.md).
package refusal

import (
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Reasons a refusal is counted under. A status with an ErrorInfo detail
// whose reason is one of these (in upper case, as gRPC's convention has
// it: ErrorInfoWrongAgentID) is counted under that reason instead of its
// code's.
const (
	ReasonPermissionDenied = "permission_denied"
	ReasonUnauthenticated  = "unauthenticated"
	ReasonWrongAgentID     = "wrong_agent_id"
	ReasonTLSHandshake     = "tls_handshake"
	ReasonConnectionLimit  = "connection_limit"
)

// Reasons lists every reason, in a stable order (for metrics that show a
// zero before the first refusal).
var Reasons = []string{ReasonPermissionDenied, ReasonUnauthenticated, ReasonWrongAgentID, ReasonTLSHandshake, ReasonConnectionLimit}

// Listeners a refusal happens on.
const (
	ListenerGRPC = "grpc"
	ListenerRaft = "raft"
)

// Listeners lists every listener, in a stable order.
var Listeners = []string{ListenerGRPC, ListenerRaft}

// Log rate: a burst of LogBurst lines, then one per LogEvery; lines
// dropped in between are counted and the next line says how many.
const (
	LogBurst = 10
	LogEvery = time.Second
)

// Key is what refusals are counted by.
type Key struct {
	Listener string
	Reason   string
}

// Recorder counts and logs refusals. It is safe for concurrent use.
type Recorder struct {
	logger *slog.Logger
	now    func() time.Time

	mu         sync.Mutex
	counts     map[Key]uint64
	tokens     float64
	refilled   time.Time
	suppressed uint64
}

// New returns a Recorder logging to logger (nil: counts only).
func New(logger *slog.Logger) *Recorder {
	return newRecorder(logger, time.Now)
}

func newRecorder(logger *slog.Logger, now func() time.Time) *Recorder {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Recorder{logger: logger, now: now, counts: make(map[Key]uint64), tokens: LogBurst, refilled: now()}
}

// Record counts one refusal and logs it unless the log rate is spent.
// who is the peer (identity and address as far as known), what the
// attempt (a method, "TLS handshake", "connection"), why the cause.
func (r *Recorder) Record(listener, reason, who, what, why string) {
	r.mu.Lock()
	r.counts[Key{listener, reason}]++
	log, suppressed := r.allowLocked()
	r.mu.Unlock()
	if !log {
		return
	}
	attrs := []any{"listener", listener, "reason", reason, "who", who, "what", what, "why", why}
	if suppressed > 0 {
		attrs = append(attrs, "suppressed_before", suppressed)
	}
	r.logger.Warn("refused", attrs...)
}

// allowLocked takes a token of the log rate; when none is left it counts
// the line as suppressed. It returns how many were suppressed before an
// allowed line, and resets that count.
func (r *Recorder) allowLocked() (bool, uint64) {
	now := r.now()
	r.tokens = min(LogBurst, r.tokens+float64(now.Sub(r.refilled))/float64(LogEvery))
	r.refilled = now
	if r.tokens < 1 {
		r.suppressed++
		return false, 0
	}
	r.tokens--
	n := r.suppressed
	r.suppressed = 0
	return true, n
}

// Count is the number of refusals counted under k.
func (r *Recorder) Count(k Key) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[k]
}

// Each calls fn for every listener and reason, in a stable order, with
// its count (zero included), so that every series exists from the start.
func (r *Recorder) Each(fn func(k Key, n uint64)) {
	r.mu.Lock()
	counts := make(map[Key]uint64, len(r.counts))
	for k, v := range r.counts {
		counts[k] = v
	}
	r.mu.Unlock()
	for _, l := range Listeners {
		for _, reason := range Reasons {
			fn(Key{l, reason}, counts[Key{l, reason}])
			delete(counts, Key{l, reason})
		}
	}
	// Anything else a caller recorded, sorted for a stable output.
	rest := make([]Key, 0, len(counts))
	for k := range counts {
		rest = append(rest, k)
	}
	slices.SortFunc(rest, func(a, b Key) int {
		if a.Listener != b.Listener {
			return compare(a.Listener, b.Listener)
		}
		return compare(a.Reason, b.Reason)
	})
	for _, k := range rest {
		fn(k, counts[k])
	}
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
