package agentapi

import (
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/turbulence-sre/turbulence/controller/state"
)

// follower is a Proposer that never leads.
type follower struct{ leaderOnly }

func (follower) IsLeader() bool { return false }

// A Hello held on a follower waits out a long election (ElectionHold),
// and is redirected the moment a leader is heard from, not refused after
// the default hold: refused, a whole fleet would sit out its backoff
// after the new leader is ready.
func TestAwaitLeader_HoldsThroughALongElection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var leader atomic.Value
		leader.Store("")
		h := New(Config{Raft: follower{}, State: state.New(), ElectionHold: 8 * time.Second,
			LeaderGRPCAddr: func() string { return leader.Load().(string) }})
		start := time.Now()
		time.AfterFunc(6*time.Second, func() { leader.Store("198.18.0.2:7420") })
		if h.awaitLeader(t.Context()) {
			t.Fatal("awaitLeader on a follower = true, want false (redirect)")
		}
		if waited := time.Since(start); waited < 6*time.Second || waited > 6*time.Second+electionPoll {
			t.Errorf("held %v, want until the leader was heard at 6s", waited)
		}

		leader.Store("")
		start = time.Now()
		h.awaitLeader(t.Context())
		if waited := time.Since(start); waited != 8*time.Second {
			t.Errorf("with no leader, held %v, want the 8s hold", waited)
		}
		if got := New(Config{Raft: follower{}, State: state.New(), ElectionHold: time.Minute}).cfg.ElectionHold; got != MaxElectionHold {
			t.Errorf("a hold of a minute is kept as %v, want MaxElectionHold (%v, under the agent's Welcome timeout)", got, MaxElectionHold)
		}
	})
}
