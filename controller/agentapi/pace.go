package agentapi

import (
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// DefaultMaxHeartbeatRate is how many heartbeats a second the leader
// plans for across the fleet (Config.MaxHeartbeatRate). Up to this many
// agents, each beats at the configured interval (1 s by default); a
// larger fleet beats slower, so that the leader's work stays about the
// same whatever its size. Measured on two shared cores, one heartbeat
// costs the leader some 75 to 85 µs (docs/benchmarks.md): 2,000 a second
// is about a sixth of a core.
const DefaultMaxHeartbeatRate = 2000

// paceStep rounds a paced interval up, so that a fleet growing one agent
// at a time changes its agents' interval every few hundred agents, not
// at each.
const paceStep = 250 * time.Millisecond

// pace is the heartbeat interval for a fleet of n open sessions
// (docs/design.md, "Heartbeat pacing"): the configured interval, or
// slower when n agents at that interval would send more than
// MaxHeartbeatRate heartbeats a second, but never slower than a third of
// the lease TTL. The agent renews its lease on the answer to each
// heartbeat, so three heartbeats a lease keep a healthy agent at least
// two thirds of its lease ahead, however large the fleet.
func (h *Hub) pace(n int) time.Duration {
	paced := time.Duration(n) * time.Second / time.Duration(h.cfg.MaxHeartbeatRate) // New makes the rate > 0
	paced = (paced + paceStep - 1) / paceStep * paceStep
	d := max(h.cfg.HeartbeatInterval, paced)
	if ceiling := h.cfg.LeaseTTL / 3; d > ceiling {
		d = max(h.cfg.HeartbeatInterval, ceiling)
	}
	return d
}

// HeartbeatInterval is the interval agents are told now: the configured
// one, paced to the fleet's size (pace).
func (h *Hub) HeartbeatInterval() time.Duration { return h.pace(int(h.open.Load())) }

// told records that s was told to beat every d from now on. When the
// interval shortens, the agent is judged by the longer one for two more
// of them: it learns the new one from a renewal still on its way, and
// its next heartbeat may come by the old one (session.silentAfter).
func (s *session) told(d time.Duration, now time.Time) {
	old := time.Duration(s.interval.Swap(int64(d)))
	if old > d {
		s.slowUntil.Store(now.Add(2 * old).UnixNano())
		s.slow.Store(int64(old))
	}
}

// silentAfter is how long this session may send nothing before it
// counts as silent: two of its heartbeat intervals (Hub.silent).
func (s *session) silentAfter(now time.Time) time.Duration {
	d := time.Duration(s.interval.Load())
	if now.UnixNano() < s.slowUntil.Load() {
		d = max(d, time.Duration(s.slow.Load()))
	}
	return 2 * d
}

// leaseRenewal is the renewal for s; it carries the heartbeat interval
// when the fleet's pace changed since s was last told. Called by s's
// outbox only, one at a time.
func (h *Hub) leaseRenewal(s *session) *turbulencev1.ControllerMessage {
	r := &turbulencev1.LeaseRenewal{LeaseTtl: durationpb.New(h.cfg.LeaseTTL)}
	if d := h.HeartbeatInterval(); d != time.Duration(s.interval.Load()) {
		s.told(d, time.Now())
		r.HeartbeatInterval = durationpb.New(d)
	}
	return &turbulencev1.ControllerMessage{Msg: &turbulencev1.ControllerMessage_Lease{Lease: r}}
}
