package journal

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// history writes a journal in which f1 is applied and reverted, f2 applied
// and open, and f3 only intended; it returns the file's bytes and the
// frame boundaries.
func history(t *testing.T, path string) []byte {
	t.Helper()
	j, open, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(open) != 0 {
		t.Fatalf("new journal lists %d open faults", len(open))
	}
	recs := []Record{
		{Op: OpIntent, FaultID: "f1", Kind: "cpu", At: t0, Deadline: t0.Add(time.Minute), Fault: []byte{1, 2, 3}},
		{Op: OpApplied, FaultID: "f1", At: t0, Undo: json.RawMessage(`{"worker_pid":100,"worker_start_ticks":7}`)},
		{Op: OpIntent, FaultID: "f2", Kind: "cpu", At: t0, Deadline: t0.Add(time.Minute)},
		{Op: OpApplied, FaultID: "f2", At: t0, Undo: json.RawMessage(`{"worker_pid":200,"worker_start_ticks":9}`)},
		{Op: OpReverted, FaultID: "f1", At: t0},
		{Op: OpIntent, FaultID: "f3", Kind: "cpu", At: t0, Deadline: t0.Add(time.Minute)},
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

func ids(open []Open) []string {
	var out []string
	for _, o := range open {
		out = append(out, o.Intent.FaultID)
	}
	slices.Sort(out)
	return out
}

func TestOpenFile_ReplaysOpenFaults(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "journal")
	history(t, path)
	j, open, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mustClose(t, j) })
	if got, want := ids(open), []string{"f2", "f3"}; !slices.Equal(got, want) {
		t.Fatalf("open faults = %v, want %v", got, want)
	}
	for _, o := range open {
		switch o.Intent.FaultID {
		case "f2":
			if !o.Applied || string(o.Undo) != `{"worker_pid":200,"worker_start_ticks":9}` {
				t.Errorf("f2 = %+v, want applied with worker 200/9", o)
			}
		case "f3":
			if o.Applied {
				t.Errorf("f3 = %+v, want intent only", o)
			}
		}
	}
}

// TestOpenFile_EveryTruncation cuts the journal at every byte offset, as a
// crash mid-write would, and checks that replay never fails, never invents
// a fault, and that a record after the cut can still be appended and read.
func TestOpenFile_EveryTruncation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	full := history(t, filepath.Join(dir, "full"))
	allowed := map[string]bool{"f1": true, "f2": true, "f3": true}
	for cut := 0; cut <= len(full); cut++ {
		path := filepath.Join(dir, "cut")
		if err := os.WriteFile(path, full[:cut], 0o600); err != nil {
			t.Fatal(err)
		}
		j, open, err := OpenFile(path)
		if err != nil {
			t.Fatalf("cut at %d: OpenFile: %v", cut, err)
		}
		for _, o := range open {
			if !allowed[o.Intent.FaultID] {
				t.Fatalf("cut at %d: invented fault %q", cut, o.Intent.FaultID)
			}
		}
		if err := j.Append(Record{Op: OpIntent, FaultID: "after", At: t0}); err != nil {
			t.Fatalf("cut at %d: Append: %v", cut, err)
		}
		mustClose(t, j)
		j2, open2, err := OpenFile(path)
		if err != nil {
			t.Fatalf("cut at %d: reopen: %v", cut, err)
		}
		if !slices.Contains(ids(open2), "after") {
			t.Fatalf("cut at %d: record appended after a torn tail was lost: %v", cut, ids(open2))
		}
		mustClose(t, j2)
	}
}

func TestOpenFile_CorruptByteStopsReplay(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "journal")
	b := history(t, path)
	b[len(b)-3] ^= 0xff // inside the last record's payload
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	j, open, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mustClose(t, j) })
	if got, want := ids(open), []string{"f2"}; !slices.Equal(got, want) {
		t.Fatalf("open faults = %v, want %v (f3's record is corrupt)", got, want)
	}
}

func TestCompact_KeepsOnlyOpenFaults(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "journal")
	before := history(t, path)
	j, _, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Compact(); err != nil {
		t.Fatal(err)
	}
	if err := j.Append(Record{Op: OpReverted, FaultID: "f3", At: t0}); err != nil {
		t.Fatal(err)
	}
	mustClose(t, j)
	after, _ := os.ReadFile(path)
	if len(after) >= len(before) {
		t.Errorf("compacted journal is %d bytes, was %d", len(after), len(before))
	}
	j2, open, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mustClose(t, j2) })
	if got, want := ids(open), []string{"f2"}; !slices.Equal(got, want) {
		t.Fatalf("open faults after compaction = %v, want %v", got, want)
	}
	if !strings.Contains(string(open[0].Undo), `"worker_pid":200`) {
		t.Fatalf("compaction lost the undo data: %+v", open[0])
	}
}

// mustClose closes c and fails the test if that fails: a journal that
// cannot be closed may not have reached the disk.
func mustClose(t *testing.T, c io.Closer) {
	t.Helper()
	if err := c.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
}

func TestOpenFile_SecondOpenerIsRefused(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "journal")
	j, _, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := OpenFile(path); !errors.Is(err, ErrLocked) {
		t.Fatalf("second OpenFile: err = %v, want ErrLocked", err)
	}
	// Compaction replaces the file; the lock must follow the name.
	if err := j.Compact(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := OpenFile(path); !errors.Is(err, ErrLocked) {
		t.Fatalf("OpenFile after Compact: err = %v, want ErrLocked", err)
	}
	mustClose(t, j)
	j2, _, err := OpenFile(path)
	if err != nil {
		t.Fatalf("OpenFile after Close: %v", err)
	}
	mustClose(t, j2)
}
