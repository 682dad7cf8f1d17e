package agentapi

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

func TestDecideExpiry(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	const ttl = 15 * time.Second
	fault := func(id, agent string, st turbulencev1.FaultState, deadline time.Time) *turbulencev1.Fault {
		return &turbulencev1.Fault{Id: id, AgentId: agent, State: st, Deadline: timestamppb.New(deadline)}
	}
	faults := []*turbulencev1.Fault{
		// Agent "gone" has been away longer than TTL + grace.
		fault("f1", "gone", stActive, now.Add(time.Hour)),
		fault("f2", "gone", stReverting, now.Add(time.Hour)),
		// Agent "brief" has been away for less: only deadlines count.
		fault("f3", "brief", stActive, now.Add(-6*time.Second)),
		fault("f4", "brief", stPending, now.Add(-4*time.Second)),
		fault("f5", "brief", stReverting, now.Add(-time.Hour)),
		// Agent "here" is connected: it reports on its own faults.
		fault("f6", "here", stActive, now.Add(-time.Hour)),
	}
	away := map[string]time.Time{
		"gone":  now.Add(-ttl - leaseGrace - time.Millisecond),
		"brief": now.Add(-ttl),
	}
	got := decideExpiry(faults, away, now, ttl)
	want := []expiry{
		{"f1", ReasonLeaseExpired},
		{"f2", ReasonLeaseExpired},
		{"f3", ReasonDeadline},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(expiry{})); diff != "" {
		t.Errorf("decideExpiry (-want +got):\n%s", diff)
	}
}
