package worker

import (
	"cmp"
	"context"
	"runtime"
	"sync"
	"time"
)

// dutyPeriod is the length of one busy+idle cycle. 100 ms is short enough
// that a sampling tool (top, node_exporter) sees a steady load, and long
// enough that the clock reads cost nothing next to the work.
const dutyPeriod = 100 * time.Millisecond

// RunCPU holds spec.LoadPercent of one CPU on each of spec.Cores threads
// until ctx is done or spec.Deadline is reached, whichever comes first.
func RunCPU(ctx context.Context, spec Spec) error {
	// Invariant 1, defence in depth: the worker ends itself at its
	// deadline whatever the agent does.
	ctx, cancel := context.WithDeadline(ctx, spec.Deadline)
	defer cancel()
	load := float64(spec.LoadPercent) / 100
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for i := range spec.Cores {
		cpu := -1
		if len(spec.CPUs) > 0 {
			cpu = spec.CPUs[i]
		}
		wg.Go(func() {
			if err := burn(ctx, cpu, load); err != nil {
				mu.Lock()
				first = cmp.Or(first, err)
				mu.Unlock()
				cancel() // one failed thread ends the whole fault
			}
		})
	}
	wg.Wait()
	return first
}

// burn runs the duty cycle on one OS thread. cpu < 0 means no pinning.
func burn(ctx context.Context, cpu int, load float64) error {
	// The thread's own CPU clock only measures this goroutine's work if the
	// goroutine never moves to another thread.
	runtime.LockOSThread()
	if cpu >= 0 {
		// A pinned thread is never unlocked: when the goroutine returns
		// the runtime then discards the thread instead of reusing it with
		// a foreign affinity mask.
		if err := pin(cpu); err != nil {
			return err
		}
	} else {
		defer runtime.UnlockOSThread()
	}
	cpu0, err := threadCPUTime()
	if err != nil {
		return err
	}
	start := time.Now()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for ctx.Err() == nil {
		periodStart := time.Now()
		used, err := threadCPUTime()
		if err != nil {
			return err
		}
		budget := nextBudget(load, periodStart.Sub(start), used-cpu0)
		if err := spin(ctx, used, budget, periodStart.Add(dutyPeriod)); err != nil {
			return err
		}
		if rest := time.Until(periodStart.Add(dutyPeriod)); rest > 0 {
			timer.Reset(rest)
			select {
			case <-ctx.Done():
				return nil
			case <-timer.C:
			}
		}
	}
	return nil
}

// spin burns CPU until the thread has used budget more CPU time than it
// had at cpuStart, the period ends, or ctx is done.
func spin(ctx context.Context, cpuStart, budget time.Duration, periodEnd time.Time) error {
	if budget <= 0 {
		return nil
	}
	var x uint64 = 1
	for {
		// A short block of pure arithmetic between clock reads keeps the
		// syscall share of the load small without overshooting the budget.
		for range 2000 {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
		}
		if x == 0 { // never true for xorshift from 1; keeps the loop observable
			runtime.Gosched()
		}
		now, err := threadCPUTime()
		if err != nil {
			return err
		}
		if now-cpuStart >= budget || !time.Now().Before(periodEnd) || ctx.Err() != nil {
			return nil
		}
	}
}

// nextBudget returns the CPU time to burn in the next period so that the
// thread's cumulative CPU time tracks load × cumulative wall time.
//
// The correction is what makes the load hold under competition (USERS.md
// C5): when other work steals the CPU, the thread falls behind its target,
// and the deficit is added to the next period's budget. The carried error
// is clamped to one period so that a long stall (a suspended VM, a stopped
// process) is not paid back as a long burst at 100 %.
func nextBudget(load float64, wall, used time.Duration) time.Duration {
	if load <= 0 {
		return 0
	}
	base := time.Duration(load * float64(dutyPeriod))
	debt := time.Duration(load*float64(wall)) - used
	debt = min(max(debt, -dutyPeriod), dutyPeriod)
	return min(max(base+debt, 0), dutyPeriod)
}
