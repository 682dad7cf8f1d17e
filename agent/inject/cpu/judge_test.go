package cpu

import (
	"testing"
	"time"
)

func TestHandle_JudgesDegradedOnlyWhenSettledOverALongWindow(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	h := &handle{target: 50, started: t0}
	steps := []struct {
		at       time.Duration
		measured float64
		window   time.Duration
		want     bool
	}{
		{time.Second, 10, 2 * time.Second, false},               // still settling
		{3 * time.Second, 10, 2 * time.Second, true},            // settled and 40 points off
		{4 * time.Second, 49, 300 * time.Millisecond, true},     // window too short: verdict kept
		{5 * time.Second, 54, 1500 * time.Millisecond, false},   // within 5 points
		{6 * time.Second, 44.9, 1500 * time.Millisecond, true},  // just outside
		{7 * time.Second, 50.5, 1000 * time.Millisecond, false}, // back on target
	}
	for _, s := range steps {
		if got := h.judge(t0.Add(s.at), s.measured, s.window); got != s.want {
			t.Errorf("at +%s measured %.1f over %s: degraded = %v, want %v", s.at, s.measured, s.window, got, s.want)
		}
	}
}
