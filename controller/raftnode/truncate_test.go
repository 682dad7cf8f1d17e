package raftnode

import (
	"errors"
	"testing"

	"github.com/hashicorp/raft"
)

// fullDisk is a log store whose writes fail while full is set.
type fullDisk struct {
	*raft.InmemStore
	full bool
}

var errFull = errors.New("no space left on device")

func (d *fullDisk) StoreLogs(logs []*raft.Log) error {
	if d.full {
		return errFull
	}
	return d.InmemStore.StoreLogs(logs)
}

func entries(term uint64, from, to uint64) []*raft.Log {
	var out []*raft.Log
	for i := from; i <= to; i++ {
		out = append(out, &raft.Log{Index: i, Term: term, Data: []byte{byte(i)}})
	}
	return out
}

func termOf(t *testing.T, s raft.LogStore, index uint64) uint64 {
	t.Helper()
	var l raft.Log
	if err := s.GetLog(index, &l); err != nil {
		t.Fatalf("GetLog(%d): %v", index, err)
	}
	return l.Term
}

// TestTruncationGuard_FailedAppendAfterTruncation: raft deletes a
// conflicting suffix, then cannot store the leader's entries (a full
// disk). The guard still serves the deleted entries, as raft still sees
// them, and the retry once the disk has room leaves the leader's entries.
func TestTruncationGuard_FailedAppendAfterTruncation(t *testing.T) {
	disk := &fullDisk{InmemStore: raft.NewInmemStore()}
	g := newTruncationGuard(disk)
	if err := g.StoreLogs(entries(4, 1, 39)); err != nil {
		t.Fatal(err)
	}
	disk.full = true
	if err := g.DeleteRange(38, 39); err != nil {
		t.Fatal(err)
	}
	if err := g.StoreLogs(entries(9, 38, 40)); !errors.Is(err, errFull) {
		t.Fatalf("StoreLogs on a full disk = %v", err)
	}
	// What raft does next: it reads the entry it believes is its last.
	if got := termOf(t, g, 39); got != 4 {
		t.Errorf("entry 39 after the failed append has term %d, want the kept term 4", got)
	}
	disk.full = false
	if err := g.DeleteRange(38, 39); err != nil {
		t.Fatal(err)
	}
	if err := g.StoreLogs(entries(9, 38, 40)); err != nil {
		t.Fatal(err)
	}
	for i := uint64(38); i <= 40; i++ {
		if got := termOf(t, g, i); got != 9 {
			t.Errorf("entry %d has term %d, want the leader's 9", i, got)
		}
	}
	if len(g.kept) != 0 {
		t.Errorf("%d entries still kept after a successful append", len(g.kept))
	}
}

// TestTruncationGuard_AppendAboveKeptFillsTheGap: after a failed append,
// raft may append past the entries it still sees (as a new leader); the
// guard stores the kept entries first, so the store has no gap.
func TestTruncationGuard_AppendAboveKeptFillsTheGap(t *testing.T) {
	disk := &fullDisk{InmemStore: raft.NewInmemStore()}
	g := newTruncationGuard(disk)
	if err := g.StoreLogs(entries(4, 1, 39)); err != nil {
		t.Fatal(err)
	}
	disk.full = true
	if err := g.DeleteRange(39, 39); err != nil {
		t.Fatal(err)
	}
	_ = g.StoreLogs(entries(9, 39, 39)) // fails: the disk is full
	disk.full = false
	if err := g.StoreLogs(entries(10, 40, 40)); err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	if err := disk.GetLog(39, &l); err != nil || l.Term != 4 {
		t.Errorf("store's entry 39 = term %d, %v; want the kept entry (term 4) written back", l.Term, err)
	}
	if got := termOf(t, g, 40); got != 10 {
		t.Errorf("entry 40 has term %d, want 10", got)
	}
}

// TestTruncationGuard_CompactionIsNotKept: deleting the oldest entries
// (compaction after a snapshot) keeps nothing.
func TestTruncationGuard_CompactionIsNotKept(t *testing.T) {
	g := newTruncationGuard(raft.NewInmemStore())
	if err := g.StoreLogs(entries(2, 1, 10)); err != nil {
		t.Fatal(err)
	}
	if err := g.DeleteRange(1, 8); err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	if err := g.GetLog(5, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Errorf("GetLog of a compacted entry = %v, want ErrLogNotFound", err)
	}
}
