package leasefile

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/turbulence-sre/turbulence/agent/bootclock"
)

// writeRaw writes a lease file whose two clocks say what a test wants:
// what a step of the wall clock since the agent wrote it looks like.
func writeRaw(t *testing.T, dir string, wall time.Time, boot bootclock.Instant) {
	t.Helper()
	text := fmt.Sprintf("%d\n", wall.UnixNano())
	if !boot.IsZero() {
		text += fmt.Sprintf("%s %s %d\n", bootPrefix, boot.Boot, boot.Nanos)
	}
	if err := os.WriteFile(filepath.Join(dir, leaseFile), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func bootIn(t *testing.T, d time.Duration) bootclock.Instant {
	t.Helper()
	now, err := bootclock.Now()
	if err != nil {
		t.Fatal(err)
	}
	return now.Add(d)
}

// TestLapsed_JudgedOnTheBootClock: a lease is judged on the boot clock,
// which no step of the wall clock moves. Stepped forward an hour, the
// wall clock reads a healthy lease as an hour gone (a worker would end
// its healthy fault); stepped back an hour, it reads a lapsed lease as
// an hour away (a frozen agent's worker would run an hour too long).
func TestLapsed_JudgedOnTheBootClock(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the boot clock is Linux's")
	}
	for _, tc := range []struct {
		name       string
		wall       time.Time
		boot       time.Duration
		wantLapsed bool
	}{
		{"wall clock stepped forward past a live lease", time.Now().Add(-time.Hour), 10 * time.Second, false},
		{"wall clock stepped back over a lapsed lease", time.Now().Add(time.Hour), -10 * time.Second, true},
		{"lapsed less than Grace ago", time.Now().Add(-time.Hour), -Grace / 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeRaw(t, dir, tc.wall, bootIn(t, tc.boot))
			wall, lapsed := Lapsed(dir)
			if lapsed != tc.wantLapsed || !wall.Equal(tc.wall) {
				t.Errorf("Lapsed = %v, %v; want %v, %v", wall, lapsed, tc.wall, tc.wantLapsed)
			}
			left, _, ok, err := Until(dir)
			if !ok || err != nil || left > tc.boot || left < tc.boot-time.Second {
				t.Errorf("Until = %v, %v, %v; want about %v (the boot clock's)", left, ok, err, tc.boot)
			}
		})
	}
}

// TestUntil_EarlierBootIsNoLease: a lease written in an earlier boot
// says nothing now: no process of that boot holds a fault.
func TestUntil_EarlierBootIsNoLease(t *testing.T) {
	dir := t.TempDir()
	writeRaw(t, dir, time.Now().Add(-time.Hour), bootclock.Instant{Boot: "an-earlier-boot", Nanos: 1})
	if left, _, ok, err := Until(dir); ok || err != nil {
		t.Errorf("Until = %v, %v, %v; want not known", left, ok, err)
	}
	if _, lapsed := Lapsed(dir); lapsed {
		t.Error("a lease of an earlier boot reads as lapsed")
	}
}

// TestUntil_OlderFileOnTheWallClock: a file of an agent before the boot
// clock (one line) is judged on the wall clock.
func TestUntil_OlderFileOnTheWallClock(t *testing.T) {
	dir := t.TempDir()
	writeRaw(t, dir, time.Now().Add(-time.Minute), bootclock.Instant{})
	if _, lapsed := Lapsed(dir); !lapsed {
		t.Error("a one-line lease a minute past does not read as lapsed")
	}
}

// TestWrite_RoundTrip: what Write records, Read and Until read back.
func TestWrite_RoundTrip(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the boot clock is Linux's")
	}
	dir := t.TempDir()
	expiry := time.Now().Add(10 * time.Second)
	if err := Write(dir, expiry); err != nil {
		t.Fatal(err)
	}
	wall, ok, err := Read(dir)
	if !ok || err != nil || !wall.Equal(time.Unix(0, expiry.UnixNano())) {
		t.Errorf("Read = %v, %v, %v; want %v", wall, ok, err, expiry)
	}
	left, _, ok, err := Until(dir)
	if !ok || err != nil || left > 10*time.Second || left < 9*time.Second {
		t.Errorf("Until = %v, %v, %v; want about 10 s", left, ok, err)
	}
}

// TestRead_RefusesABadBootLine: a second line that is not the boot
// clock's is an unreadable file, not a lease.
func TestRead_RefusesABadBootLine(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, leaseFile), []byte("1\nboottime\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := Read(dir); ok || err == nil {
		t.Errorf("Read of a bad boot line = %v, %v; want an error", ok, err)
	}
}
