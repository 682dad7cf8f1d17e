package journal_test

// These tests judge the journal from its file format alone (doc.go: a
// 4-byte big-endian length, a 4-byte CRC-32C of the payload, a JSON
// payload), through the exported API and the raw bytes, so they hold
// whatever a record's revert data looks like.

import (
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/agent/journal"
)

var at = time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)

// script is a history in which f1 and f3 are reverted, f2 is applied and
// open, f4 is only intended: a replay that loses a Reverted record shows
// a dead fault as open.
var script = []journal.Record{
	{Op: journal.OpIntent, FaultID: "f1", Kind: "cpu", At: at, Deadline: at.Add(time.Minute)},
	{Op: journal.OpApplied, FaultID: "f1", At: at},
	{Op: journal.OpIntent, FaultID: "f2", Kind: "cpu", At: at, Deadline: at.Add(time.Minute)},
	{Op: journal.OpReverted, FaultID: "f1", At: at},
	{Op: journal.OpApplied, FaultID: "f2", At: at},
	{Op: journal.OpIntent, FaultID: "f3", Kind: "disk", At: at, Deadline: at.Add(time.Minute)},
	{Op: journal.OpApplied, FaultID: "f3", At: at},
	{Op: journal.OpReverted, FaultID: "f3", At: at},
	{Op: journal.OpIntent, FaultID: "f4", Kind: "network", At: at, Deadline: at.Add(time.Minute)},
}

// oracle replays records the way doc.go describes, independently of
// journal.go: an Intent opens a fault, a Reverted closes it.
func oracle(recs []journal.Record) []string {
	open := map[string]bool{}
	for _, r := range recs {
		switch r.Op {
		case journal.OpIntent:
			open[r.FaultID] = true
		case journal.OpReverted:
			delete(open, r.FaultID)
		}
	}
	return slices.Sorted(maps.Keys(open))
}

func openIDs(open []journal.Open) []string {
	out := []string{}
	for _, o := range open {
		out = append(out, o.Intent.FaultID)
	}
	slices.Sort(out)
	return out
}

// writeScript appends recs to a new journal at path and returns the file.
func writeScript(t *testing.T, path string, recs []journal.Record) []byte {
	t.Helper()
	j, _, err := journal.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := j.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// frameEnds returns the offset just after each frame of a journal file,
// read from the length headers.
func frameEnds(t *testing.T, b []byte) []int {
	t.Helper()
	var ends []int
	for off := 0; off < len(b); {
		if len(b)-off < 8 {
			t.Fatalf("trailing %d bytes at %d", len(b)-off, off)
		}
		off += 8 + int(binary.BigEndian.Uint32(b[off:off+4]))
		ends = append(ends, off)
	}
	if len(ends) != len(script) {
		t.Fatalf("file has %d frames, want %d", len(ends), len(script))
	}
	return ends
}

// frame encodes payload as the journal does, with the checksum given.
func frame(payload []byte, sum uint32) []byte {
	b := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint32(b[0:4], uint32(len(payload)))
	binary.BigEndian.PutUint32(b[4:8], sum)
	return append(b, payload...)
}

func crc(p []byte) uint32 { return crc32.Checksum(p, crc32.MakeTable(crc32.Castagnoli)) }

// reopen opens path, returns the open IDs (checking that OpenFaults agrees
// with what OpenFile returned) and closes it.
func reopen(t *testing.T, path string) []string {
	t.Helper()
	j, open, err := journal.OpenFile(path)
	if err != nil {
		t.Fatalf("OpenFile: %v", err)
	}
	got := openIDs(open)
	if now := openIDs(j.OpenFaults()); !slices.Equal(now, got) {
		t.Errorf("OpenFaults = %v, OpenFile returned %v", now, got)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	return got
}

// TestChecksum_ValidJSONWithWrongChecksumIsRefused: a frame whose payload
// is a well-formed record but whose CRC does not match is not replayed,
// and neither is anything after it. The payloads here are what Append
// would write, so only the checksum can refuse them.
func TestChecksum_ValidJSONWithWrongChecksumIsRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		rec  journal.Record
		want []string
	}{
		// A Reverted record that would close f2: refused, f2 stays open
		// and is reverted again at start-up (the safe side).
		{"reverted", journal.Record{Op: journal.OpReverted, FaultID: "f2", At: at}, []string{"f2", "f4"}},
		// An Intent that would invent a fault.
		{"intent", journal.Record{Op: journal.OpIntent, FaultID: "ghost", Kind: "cpu", At: at, Deadline: at.Add(time.Minute)}, []string{"f2", "f4"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "journal")
			good := writeScript(t, path, script)
			payload, err := json.Marshal(tc.rec)
			if err != nil {
				t.Fatal(err)
			}
			bad := frame(payload, crc(payload)^0x5a5a5a5a)
			// A valid frame after the bad one must not be replayed either:
			// past a bad frame the file is a torn tail.
			after, _ := json.Marshal(journal.Record{Op: journal.OpIntent, FaultID: "later", At: at})
			b := slices.Concat(good, bad, frame(after, crc(after)))
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			if got := reopen(t, path); !slices.Equal(got, tc.want) {
				t.Fatalf("open faults = %v, want %v", got, tc.want)
			}
			// Replay cut the file at the bad frame, so what follows is
			// appended on a frame boundary and read back.
			if fi, err := os.Stat(path); err != nil || fi.Size() != int64(len(good)) {
				t.Fatalf("journal after replay is %v bytes (%v), want %d (cut at the bad frame)", fi.Size(), err, len(good))
			}
		})
	}
}

// TestChecksum_EveryBitFlipStopsReplayAtItsFrame flips one bit at every
// offset of the file. CRC-32C catches every single-bit error, so the
// replay must be exactly the frames before the damaged one: never a
// revived fault (a flipped op or ID in a Reverted record is still valid
// JSON), never an invented one.
func TestChecksum_EveryBitFlipStopsReplayAtItsFrame(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	full := writeScript(t, filepath.Join(dir, "full"), script)
	ends := frameEnds(t, full)
	for off := range full {
		k := 0 // the frame holding off
		for ends[k] <= off {
			k++
		}
		for _, bit := range []byte{0x01, 0x20} {
			b := slices.Clone(full)
			b[off] ^= bit
			path := filepath.Join(dir, "flipped")
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			if got, want := reopen(t, path), oracle(script[:k]); !slices.Equal(got, want) {
				t.Fatalf("bit %#x flipped at offset %d (frame %d): open faults = %v, want %v", bit, off, k, got, want)
			}
		}
	}
}

// TestTruncation_NeverRevivesARevertedFault cuts the file at every offset
// and checks the exact replay: the faults opened by the complete frames
// before the cut and not closed by them — so a fault whose Reverted
// record is whole stays reverted. Then it appends, reopens and compacts,
// and the answer must not change: a torn tail must not take a good record
// with it.
func TestTruncation_NeverRevivesARevertedFault(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	full := writeScript(t, filepath.Join(dir, "full"), script)
	ends := frameEnds(t, full)
	for cut := 0; cut <= len(full); cut++ {
		whole := 0
		for whole < len(ends) && ends[whole] <= cut {
			whole++
		}
		want := oracle(script[:whole])
		path := filepath.Join(dir, "cut")
		if err := os.WriteFile(path, full[:cut], 0o600); err != nil {
			t.Fatal(err)
		}
		j, open, err := journal.OpenFile(path)
		if err != nil {
			t.Fatalf("cut at %d: OpenFile: %v", cut, err)
		}
		if got := openIDs(open); !slices.Equal(got, want) {
			t.Fatalf("cut at %d (%d whole frames): open faults = %v, want %v", cut, whole, got, want)
		}
		if err := j.Append(journal.Record{Op: journal.OpIntent, FaultID: "after", At: at}); err != nil {
			t.Fatalf("cut at %d: Append: %v", cut, err)
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		wantAfter := slices.Sorted(slices.Values(append(slices.Clone(want), "after")))
		if got := reopen(t, path); !slices.Equal(got, wantAfter) {
			t.Fatalf("cut at %d: after an append and a reopen, open faults = %v, want %v", cut, got, wantAfter)
		}
		j, _, err = journal.OpenFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := j.Compact(); err != nil {
			t.Fatalf("cut at %d: Compact: %v", cut, err)
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		if got := reopen(t, path); !slices.Equal(got, wantAfter) {
			t.Fatalf("cut at %d: after compaction, open faults = %v, want %v", cut, got, wantAfter)
		}
	}
}
