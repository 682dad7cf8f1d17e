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
		// Already UNCONFIRMED: left alone until the agent reports.
		fault("f7", "gone", stUnconfirmed, now.Add(-time.Hour)),
	}
	goneSince := now.Add(-ttl - leaseGrace - time.Millisecond)
	lastHeard := goneSince.Add(-300 * time.Millisecond)
	away := map[string]absence{
		"gone":  {since: goneSince, lastContact: lastHeard},
		"brief": {since: now.Add(-ttl), lastContact: now.Add(-ttl)},
	}
	got := decideExpiry(faults, away, now, ttl)
	// Invariant 8: nothing is recorded REVERTED on the controller's own
	// guess; the lease case carries the moment the lease ran out.
	want := []expiry{
		{faultID: "f1", agentID: "gone", reason: ReasonLeaseExpired, since: lastHeard.Add(ttl)},
		{faultID: "f2", agentID: "gone", reason: ReasonLeaseExpired, since: lastHeard.Add(ttl)},
		{faultID: "f3", reason: ReasonDeadlineUnreachable, since: now.Add(-6 * time.Second)},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(expiry{})); diff != "" {
		t.Errorf("decideExpiry (-want +got):\n%s", diff)
	}
}
