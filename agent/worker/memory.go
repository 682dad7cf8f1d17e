package worker

import "time"

// The memory worker holds a resident size, not a mapping size: what an
// operator asks for ("take 4 GiB away from this host") is what the kernel
// counts as resident for the worker, in /proc/<pid>/statm, the figure the
// injector reports and the OOM killer weighs. stress-ng's --vm holds
// virtual memory and lets the kernel decide how much of it is resident
// (docs/dependencies.md); this worker measures and corrects instead:
//
//   - the memory is one anonymous private mapping (unix.Mmap, never the Go
//     heap, so that the garbage collector neither scans nor frees it),
//     with transparent huge pages turned off for it so that one touch
//     makes exactly one base page resident and a release frees exactly
//     what it names;
//   - a control loop reads the process's resident size every memoryTick and
//     touches more pages of the mapping when it is below the wanted size,
//     or releases pages (MADV_DONTNEED) when it is above, so that the Go
//     runtime's own few MiB are part of the target instead of an error
//     on top of it, and a kernel that reclaimed pages is answered by
//     touching them again;
//   - with a ramp, the wanted size grows linearly from the start-up size
//     to the target over the ramp time;
//   - oom_score_adj is 1000 from the start, before anything is mapped, so
//     that under memory pressure the OOM killer takes the worker and not
//     the agent or the host's services (docs/design.md "Workers").

// memoryTick is the period of the control loop: short enough that a ramp
// is a smooth line and a reclaim is answered within a heartbeat, long
// enough that reading /proc/self/statm costs nothing.
const memoryTick = 50 * time.Millisecond

// touchChunk is how much of the mapping is touched between two checks of
// the context, so that SIGTERM or the deadline interrupts a large touch
// within milliseconds.
const touchChunk = 64 << 20

// OOMScoreAdj is the oom_score_adj every memory worker gives itself: the
// highest, so the OOM killer picks it first.
const OOMScoreAdj = 1000

// rampTarget is the resident size wanted elapsed after the start of a ramp
// from base to target lasting ramp. It never goes below base (the worker
// cannot be smaller than its own runtime) and reaches target at ramp.
func rampTarget(base, target uint64, ramp, elapsed time.Duration) uint64 {
	if ramp <= 0 || elapsed >= ramp || base >= target {
		return target
	}
	if elapsed <= 0 {
		return base
	}
	frac := float64(elapsed) / float64(ramp)
	return base + uint64(frac*float64(target-base))
}

// deadBand is how far the resident size may stray from want before the
// loop corrects it: 0.1 % of the target (a tenth of the promise of 1 %),
// and at least one page, the unit the kernel counts in.
func deadBand(want, page uint64) uint64 {
	return max(want/1000, page)
}

// correction returns how many bytes of the mapping to touch (positive) or
// release (negative) to bring rss to want, in whole pages, given that the
// first touched bytes of a mapping of size bytes are in use. It returns 0
// inside the dead band and never asks to touch past size or release more
// than is touched.
func correction(rss, want, touched, size, page uint64) int64 {
	band := deadBand(want, page)
	switch {
	case rss+band < want:
		grow := roundUp(want-rss, page)
		return int64(min(grow, size-touched))
	case rss > want+band:
		shrink := (rss - want) / page * page
		return -int64(min(shrink, touched))
	}
	return 0
}

func roundUp(n, unit uint64) uint64 {
	return (n + unit - 1) / unit * unit
}
