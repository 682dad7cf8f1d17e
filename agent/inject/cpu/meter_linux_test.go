package cpu

import (
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func writeStat(t *testing.T, root string, pid string, utime, stime int) {
	t.Helper()
	dir := filepath.Join(root, pid)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	line := pid + " (turbulence-agent) S 1 1 1 0 -1 0 0 0 0 0 " + itoa(utime) + " " + itoa(stime) + " 0 0 20 0 1 0 1 0 0\n"
	if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestMeter_SamplesDeltasPerCore(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	start := time.Unix(1000, 0)
	m := newMeter(root, 77, 2, start)

	// 1 s of wall time, 1 s of CPU (80 user + 20 system ticks) on 2 cores: 50 %.
	writeStat(t, root, "77", 80, 20)
	if got := m.sample(start.Add(time.Second)); math.Abs(got-50) > 0.01 {
		t.Errorf("first sample = %v, want 50", got)
	}
	// Next second: 0.5 s more CPU: 25 %.
	writeStat(t, root, "77", 120, 30)
	if got := m.sample(start.Add(2 * time.Second)); math.Abs(got-25) > 0.01 {
		t.Errorf("second sample = %v, want 25", got)
	}
	// Too soon after the last reading: the last figure, not tick noise.
	writeStat(t, root, "77", 200, 30)
	if got := m.sample(start.Add(2*time.Second + 10*time.Millisecond)); math.Abs(got-25) > 0.01 {
		t.Errorf("early sample = %v, want the previous 25", got)
	}
	// The process is gone: 0, not a stale figure.
	if got := newMeter(root, 78, 1, start).sample(start.Add(time.Second)); got != 0 {
		t.Errorf("sample of a missing pid = %v, want 0", got)
	}
}
