package raftnode

import (
	"errors"
	"fmt"
	"sync"

	"github.com/hashicorp/raft"
)

// ErrWouldLoseQuorum: a removal refused because the voters left could not
// elect a leader or commit (the last voter, or too few of those left
// answer the leader's heartbeats). A cluster in that state cannot undo
// the change by itself: only the offline recovery can (Recover).
var ErrWouldLoseQuorum = errors.New("the remaining voters would have no quorum")

// peerHealth is what the leader's replication says of each peer: raft
// reports a peer whose heartbeats fail and again when they resume. Only a
// leader heartbeats, so the record is cleared at every leadership change.
type peerHealth struct {
	mu      sync.Mutex
	failing map[string]bool
}

func (h *peerHealth) observe(o raft.Observation) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch d := o.Data.(type) {
	case raft.FailedHeartbeatObservation:
		h.failing[string(d.PeerID)] = true
	case raft.ResumedHeartbeatObservation:
		delete(h.failing, string(d.PeerID))
	case raft.LeaderObservation:
		clear(h.failing)
	}
}

func (h *peerHealth) isFailing(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.failing[id]
}

// watchHealth feeds raft's heartbeat observations to n.health until raft
// shuts down. Observations are dropped rather than block raft when the
// channel is full; a dropped one is corrected by the next.
func (n *Node) watchHealth() {
	ch := make(chan raft.Observation, 64)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.FailedHeartbeatObservation, raft.ResumedHeartbeatObservation, raft.LeaderObservation:
			return true
		}
		return false
	})
	n.raft.RegisterObserver(obs)
	n.healthDone.Go(func() {
		defer n.raft.DeregisterObserver(obs)
		for {
			select {
			case o := <-ch:
				n.health.observe(o)
			case <-n.stop:
				return
			}
		}
	})
}

// checkRemoval refuses to remove id when the voters left would lose
// quorum: none left, or fewer than a majority of them known to answer.
// The leader (this node) answers by definition; another voter answers
// unless its heartbeats are failing now.
func (n *Node) checkRemoval(servers []Server, id string) error {
	var left []string
	isVoter := false
	for _, s := range servers {
		if s.Suffrage != "voter" {
			continue
		}
		if s.ID == id {
			isVoter = true
			continue
		}
		left = append(left, s.ID)
	}
	if !isVoter {
		return nil // a non-voter counts for no quorum
	}
	if len(left) == 0 {
		return fmt.Errorf("remove server %q: it is the last voter: %w", id, ErrWouldLoseQuorum)
	}
	answering := 0
	var silent []string
	for _, v := range left {
		if v == n.id || !n.health.isFailing(v) {
			answering++
		} else {
			silent = append(silent, v)
		}
	}
	if need := len(left)/2 + 1; answering < need {
		return fmt.Errorf("remove server %q: %d voters would be left, of which only %d answer heartbeats (not answering: %v), and a quorum needs %d; remove a silent voter first: %w",
			id, len(left), answering, silent, need, ErrWouldLoseQuorum)
	}
	return nil
}

// FailingPeers lists the servers whose heartbeats from this leader fail
// now (empty on a follower).
func (n *Node) FailingPeers() []string {
	n.health.mu.Lock()
	defer n.health.mu.Unlock()
	out := make([]string, 0, len(n.health.failing))
	for id := range n.health.failing {
		out = append(out, id)
	}
	return out
}
