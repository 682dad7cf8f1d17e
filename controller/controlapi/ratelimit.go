package controlapi

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Default per-identity limit on mutating calls: 20 per second, bursts of
// 40. A person or a script driving experiments stays far below it; a
// runaway loop does not fill the raft log (and the audit log) with
// thousands of writes a second.
const (
	DefaultWriteRate  = 20
	DefaultWriteBurst = 40
)

// maxTrackedIdentities bounds the limiter's memory. Identities come from
// certificates the fleet CA signed, so there are few; past this many, the
// buckets that are full (idle callers) are forgotten.
const maxTrackedIdentities = 10_000

// RateLimiter limits mutating calls per caller identity with a token
// bucket. It exempts:
//   - Halt: invariant 5, the kill switch always works, however busy the
//     caller has been;
//   - reads (Get*, List*, Watch*), which change nothing;
//   - controller certificates: a follower forwarding a write to the
//     leader has already applied the limit to the human behind it.
//
// A refused call gets ResourceExhausted naming the limit, and nothing is
// proposed.
//
// Each controller node has its own RateLimiter (the buckets are soft
// state, never replicated), so the limit holds per node: see the package
// documentation for why that is enough.
type RateLimiter struct {
	rate  float64
	burst float64
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// NewRateLimiter returns a limiter allowing perSecond mutating calls per
// identity on average, and bursts of burst. Zero values take the
// defaults.
func NewRateLimiter(perSecond float64, burst int) *RateLimiter {
	if perSecond <= 0 {
		perSecond = DefaultWriteRate
	}
	if burst <= 0 {
		burst = DefaultWriteBurst
	}
	return &RateLimiter{rate: perSecond, burst: float64(burst), now: time.Now, buckets: make(map[string]*bucket)}
}

// limitedServices are the services whose writes are limited.
var limitedServices = []string{
	"/" + turbulencev1.ControlService_ServiceDesc.ServiceName + "/",
	"/" + turbulencev1.ClusterService_ServiceDesc.ServiceName + "/",
}

// haltMethod is exempt: the kill switch must always work (invariant 5).
var haltMethod = "/" + turbulencev1.ControlService_ServiceDesc.ServiceName + "/Halt"

// Mutating reports whether a full gRPC method name is a write the limiter
// counts. A method added later is limited unless its name says it reads:
// forgetting to list a new write must not leave it unlimited.
func Mutating(fullMethod string) bool {
	if fullMethod == haltMethod {
		return false
	}
	for _, prefix := range limitedServices {
		name, ok := strings.CutPrefix(fullMethod, prefix)
		if !ok {
			continue
		}
		for _, read := range []string{"Get", "List", "Watch"} {
			if strings.HasPrefix(name, read) {
				return false
			}
		}
		return true
	}
	return false
}

// Unary is the interceptor. Put it before write forwarding in the chain,
// so that the node the caller reached counts the call.
func (l *RateLimiter) Unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if err := l.check(ctx, info.FullMethod); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

func (l *RateLimiter) check(ctx context.Context, method string) error {
	if !Mutating(method) {
		return nil
	}
	id, err := tlsutil.PeerIdentity(ctx)
	if err != nil {
		// The handler refuses it as unauthenticated, with the reason.
		return nil
	}
	if id.Role == tlsutil.RoleController {
		return nil
	}
	if wait, ok := l.take(id.String()); !ok {
		return l.refusal(id, wait)
	}
	return nil
}

// refusal is the ResourceExhausted status of a limited call. Besides the
// message it carries a QuotaFailure naming the caller and the limit, and
// a RetryInfo with the pause, so that turbctl can tell a rate limit from
// gRPC's own ResourceExhausted (a message over the size limit) and print
// the limit and the pause (its exit code 7).
func (l *RateLimiter) refusal(id tlsutil.Identity, wait time.Duration) error {
	wait = max(wait.Round(time.Millisecond), time.Millisecond)
	limit := fmt.Sprintf("at most %g mutating calls per second, bursts of %g, per identity on each controller node", l.rate, l.burst)
	st := status.Newf(codes.ResourceExhausted,
		"rate limit: %s may make %s; retry in %s (halt is never limited)", id, limit, wait)
	detailed, err := st.WithDetails(
		&errdetails.QuotaFailure{Violations: []*errdetails.QuotaFailure_Violation{{Subject: id.String(), Description: limit}}},
		&errdetails.RetryInfo{RetryDelay: durationpb.New(wait)},
	)
	if err != nil {
		return st.Err()
	}
	return detailed.Err()
}

// take spends one token of key's bucket, or says how long until one is
// there.
func (l *RateLimiter) take(key string) (time.Duration, bool) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= maxTrackedIdentities {
			l.forgetIdleLocked(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	if elapsed := now.Sub(b.last).Seconds(); elapsed > 0 {
		b.tokens = min(l.burst, b.tokens+elapsed*l.rate)
		b.last = now
	}
	if b.tokens < 1 {
		return time.Duration((1 - b.tokens) / l.rate * float64(time.Second)), false
	}
	b.tokens--
	return 0, true
}

// forgetIdleLocked drops buckets that have refilled: forgetting them
// changes nothing for their callers.
func (l *RateLimiter) forgetIdleLocked(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
}
