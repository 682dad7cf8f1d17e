package worker

import (
	"context"
	"time"
)

// hostPeriod is how often the host-utilisation controller re-reads the
// host's CPU time. /proc/stat counts in 10 ms ticks: over half a second on
// two CPUs that is a 1 % resolution.
const hostPeriod = 500 * time.Millisecond

// hostGain is the share of the correction applied each period: below 1 so
// that tick rounding and bursts from other processes do not make the load
// oscillate.
const hostGain = 0.6

// hostSample is one reading of the host's and the worker's own CPU time,
// both in USER_HZ ticks.
type hostSample struct {
	busy, total, own uint64
	cpus             int
}

// holdHost adjusts duty every hostPeriod so that the whole host's CPU
// utilisation is target (0..1), given whatever else runs: the worker's
// threads fill exactly the gap other processes leave.
func holdHost(ctx context.Context, duty *dutyCycle, threads int, target float64) error {
	prev, err := readHostSample()
	if err != nil {
		return err
	}
	tick := time.NewTicker(hostPeriod)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		cur, err := readHostSample()
		if err != nil {
			return err
		}
		if next, ok := hostDuty(target, duty.get(), prev, cur, threads); ok {
			duty.set(next)
		}
		prev = cur
	}
}

// hostDuty returns the duty cycle for the next period from two samples:
// the share of the host other processes used, subtracted from the target,
// spread over the worker's threads, and approached by hostGain. ok is false
// when the window is empty (no tick elapsed).
func hostDuty(target, current float64, prev, cur hostSample, threads int) (next float64, ok bool) {
	total := float64(cur.total - prev.total)
	if total <= 0 || threads <= 0 || cur.cpus <= 0 || cur.total < prev.total {
		return current, false
	}
	busy := float64(cur.busy-prev.busy) / total
	own := float64(cur.own-prev.own) / total
	others := max(busy-own, 0)
	want := (target - others) * float64(cur.cpus) / float64(threads)
	want = min(max(want, 0), 1)
	next = current + hostGain*(want-current)
	return min(max(next, 0), 1), true
}
