package worker

import (
	"cmp"
	"context"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
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
	duty := new(dutyCycle)
	duty.set(float64(spec.LoadPercent) / 100)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	if spec.HostUtilPercent > 0 {
		// The threads start at the target and the controller corrects
		// the duty cycle for whatever else runs on the host.
		duty.set(float64(spec.HostUtilPercent) / 100)
		wg.Go(func() {
			if err := holdHost(ctx, duty, spec.Cores, float64(spec.HostUtilPercent)/100); err != nil {
				mu.Lock()
				first = cmp.Or(first, err)
				mu.Unlock()
				cancel()
			}
		})
	}
	for i := range spec.Cores {
		cpu := -1
		if len(spec.CPUs) > 0 {
			cpu = spec.CPUs[i]
		}
		wg.Go(func() {
			if err := burn(ctx, cpu, duty); err != nil {
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
// The duty cycle may change while it runs (host-utilisation mode); the
// thread's CPU time then tracks the integral of it.
func burn(ctx context.Context, cpu int, duty *dutyCycle) error {
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
	last := time.Now()
	prevLoad := duty.get()
	var target time.Duration // the CPU time owed so far
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for ctx.Err() == nil {
		periodStart := time.Now()
		// The period just ended is owed at the load that held during it.
		target += time.Duration(prevLoad * float64(periodStart.Sub(last)))
		last = periodStart
		load := duty.get()
		prevLoad = load
		used, err := threadCPUTime()
		if err != nil {
			return err
		}
		budget := budgetFor(load, target, used-cpu0)
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
	return budgetFor(load, time.Duration(load*float64(wall)), used)
}

// budgetFor is nextBudget for a load that may have changed over time:
// target is the CPU time owed so far (the integral of the load).
func budgetFor(load float64, target, used time.Duration) time.Duration {
	if load <= 0 {
		return 0
	}
	base := time.Duration(load * float64(dutyPeriod))
	debt := target - used
	debt = min(max(debt, -dutyPeriod), dutyPeriod)
	return min(max(base+debt, 0), dutyPeriod)
}

// dutyCycle is the load the burning threads hold, 0..1, shared with the
// host-utilisation controller.
type dutyCycle struct{ bits atomic.Uint64 }

func (d *dutyCycle) get() float64  { return math.Float64frombits(d.bits.Load()) }
func (d *dutyCycle) set(v float64) { d.bits.Store(math.Float64bits(v)) }
