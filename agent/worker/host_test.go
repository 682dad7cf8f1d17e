package worker

import (
	"math"
	"testing"
	"time"
)

func TestHostDuty_FillsTheGapOthersLeave(t *testing.T) {
	t.Parallel()
	prev := hostSample{busy: 1000, total: 10000, own: 100, cpus: 2}
	tests := []struct {
		name            string
		target, current float64
		cur             hostSample
		threads         int
		want            float64
	}{
		// 200 ticks over 2 CPUs: others used 50 (25 %), we used 0.
		// Target 60 % → we need 35 % of the host = 0.7 CPU = 35 % of
		// each of 2 threads; from 0, one gain step goes to 0.6 × 0.35.
		{"from idle", 0.60, 0, hostSample{busy: 1050, total: 10200, own: 100, cpus: 2}, 2, 0.6 * 0.35},
		// Others used 25 %, we used 35 %: on target, no change.
		{"on target", 0.60, 0.35, hostSample{busy: 1120, total: 10200, own: 170, cpus: 2}, 2, 0.35},
		// Others already use 80 % of the host: we step back to nothing.
		{"others over target", 0.60, 0.5, hostSample{busy: 1160, total: 10200, own: 100, cpus: 2}, 2, 0.5 - 0.6*0.5},
		// One thread on a 2-CPU host can give at most 50 % of the host.
		{"capped at 100 % per thread", 0.90, 1, hostSample{busy: 1000, total: 10200, own: 100, cpus: 2}, 1, 1},
	}
	for _, tt := range tests {
		got, ok := hostDuty(tt.target, tt.current, prev, tt.cur, tt.threads)
		if !ok || math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("%s: hostDuty = %v, %v; want %v", tt.name, got, ok, tt.want)
		}
	}
	if _, ok := hostDuty(0.5, 0.3, prev, prev, 2); ok {
		t.Error("hostDuty over an empty window changed the duty cycle")
	}
}

func TestBudgetFor_FollowsAChangingLoad(t *testing.T) {
	t.Parallel()
	// 1 s at 20 % then the load rises to 80 %: owed 200 ms, used 200 ms,
	// so the next period burns the new base of 80 ms.
	if got := budgetFor(0.8, 200*time.Millisecond, 200*time.Millisecond); got != 80*time.Millisecond {
		t.Errorf("budgetFor after a load change = %v, want 80ms", got)
	}
	if got := budgetFor(0, time.Second, 0); got != 0 {
		t.Errorf("budgetFor(0) = %v, want 0", got)
	}
}

func TestSpec_HostUtilArgsRoundTrip(t *testing.T) {
	t.Parallel()
	in := Spec{FaultID: "f-host", Cores: 2, HostUtilPercent: 60, Deadline: time.Now().Add(time.Minute).Truncate(0)}
	args := in.Args()
	got, err := ParseCPUArgs(args[1:])
	if err != nil {
		t.Fatalf("ParseCPUArgs(%q): %v", args, err)
	}
	if got.HostUtilPercent != 60 || got.LoadPercent != 0 || got.Cores != 2 || !got.Deadline.Equal(in.Deadline) {
		t.Errorf("round trip = %+v, want %+v", got, in)
	}
	both := in
	both.LoadPercent = 10
	if err := both.Validate(time.Now()); err == nil {
		t.Error("a spec with both --load and --host-util validated")
	}
	over := in
	over.HostUtilPercent = 101
	if err := over.Validate(time.Now()); err == nil {
		t.Error("--host-util 101 validated")
	}
}
