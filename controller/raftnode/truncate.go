package raftnode

import (
	"errors"
	"sync"

	"github.com/hashicorp/raft"
)

// truncationGuard sits between raft and its log store and keeps a
// follower usable when raft's suffix truncation half-fails.
//
// A follower whose log conflicts with the leader's deletes the
// conflicting suffix (DeleteRange), then stores the leader's entries
// (StoreLogs). When the store fails in between — a full data disk — raft
// v1.7.3 returns with its own idea of the last index unchanged (its code
// says so in a TODO), while the store no longer holds that entry: every
// later AppendEntries then fails on "failed to get log entry", and the
// node stays wedged until it restarts, even once the disk has room again
// (seen in test/chaos's full-disk test).
//
// The guard keeps the entries a suffix deletion removed until a later
// StoreLogs succeeds, and serves them to GetLog meanwhile: raft's view and
// the log agree again (the deletion has, in effect, not happened yet), its
// next AppendEntries finds the conflict again and retries. Entries a
// suffix deletion removes are never committed (raft truncates only what
// conflicts with the leader), so forgetting them on a restart is what raft
// does anyway. A StoreLogs that starts above the kept entries stores them
// first, so that the store never has a gap where raft sees an entry.
type truncationGuard struct {
	raft.LogStore

	mu sync.Mutex
	// kept are the entries the last suffix deletion removed, in index
	// order, until a StoreLogs succeeds.
	kept []*raft.Log
}

func newTruncationGuard(s raft.LogStore) *truncationGuard { return &truncationGuard{LogStore: s} }

// DeleteRange deletes [min, max]; a deletion that reaches the last index
// (a suffix, not a compaction of the oldest entries) keeps what it
// removed.
func (g *truncationGuard) DeleteRange(min, max uint64) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	first, err := g.FirstIndex()
	if err != nil {
		return err
	}
	last, err := g.LastIndex()
	if err != nil {
		return err
	}
	suffix := min > first && max >= last
	var removed []*raft.Log
	if suffix {
		for i := min; i <= last; i++ {
			var l raft.Log
			if err := g.LogStore.GetLog(i, &l); err != nil {
				return err
			}
			removed = append(removed, &l)
		}
	}
	if err := g.LogStore.DeleteRange(min, max); err != nil {
		return err
	}
	if suffix {
		// Entries kept from an earlier deletion below min stay kept:
		// raft still sees them.
		n := 0
		for _, l := range g.kept {
			if l.Index < min {
				g.kept[n] = l
				n++
			}
		}
		g.kept = append(g.kept[:n], removed...)
	}
	return nil
}

// GetLog reads an entry, from the kept ones when the store lost it.
func (g *truncationGuard) GetLog(index uint64, out *raft.Log) error {
	err := g.LogStore.GetLog(index, out)
	if !errors.Is(err, raft.ErrLogNotFound) {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, l := range g.kept {
		if l.Index == index {
			*out = *l
			return nil
		}
	}
	return err
}

// StoreLog stores one entry, as StoreLogs does.
func (g *truncationGuard) StoreLog(l *raft.Log) error { return g.StoreLogs([]*raft.Log{l}) }

// StoreLogs stores logs, preceded by the kept entries below the first of
// them, and forgets the kept entries once that succeeded.
func (g *truncationGuard) StoreLogs(logs []*raft.Log) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(logs) == 0 || len(g.kept) == 0 {
		return g.LogStore.StoreLogs(logs)
	}
	var before []*raft.Log
	for _, l := range g.kept {
		if l.Index < logs[0].Index {
			before = append(before, l)
		}
	}
	if err := g.LogStore.StoreLogs(append(before, logs...)); err != nil {
		return err
	}
	g.kept = nil
	return nil
}
