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
	acct, err := newProcessAccount(spec.Cores)
	if err != nil {
		return err
	}
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
		share := acct.burner(i)
		cpu := -1
		if len(spec.CPUs) > 0 {
			cpu = spec.CPUs[i]
		}
		wg.Go(func() {
			if err := burn(ctx, cpu, duty, share); err != nil {
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
// thread's CPU time, plus its share of the rest of the process's, then
// tracks the integral of it.
func burn(ctx context.Context, cpu int, duty *dutyCycle, share *burnerShare) error {
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
		share.publish(used - cpu0)
		// The worker's other threads (the runtime's sysmon and GC) use CPU
		// too, and the load asked for is the process's, as top and
		// /proc/<pid>/stat show it: each burner carries its share.
		budget := budgetFor(load, target, used-cpu0+share.overhead())
		if err := spin(ctx, used, budget, periodStart.Add(dutyPeriod), func(now time.Duration) { share.publish(now - cpu0) }); err != nil {
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
// had at cpuStart, the period ends, or ctx is done. Each reading of the
// thread's CPU clock goes to seen.
func spin(ctx context.Context, cpuStart, budget time.Duration, periodEnd time.Time, seen func(time.Duration)) error {
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
		seen(now)
		if now-cpuStart >= budget || !time.Now().Before(periodEnd) || ctx.Err() != nil {
			return nil
		}
	}
}

// nextBudget returns the CPU time to burn in the next period so that the
// thread's cumulative CPU time tracks load × cumulative wall time.
//
// The correction is what makes the load hold under competition (docs/users.md
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

// processAccount splits the CPU time of the worker's threads that do not
// burn (the Go runtime's own: sysmon polls often while a goroutine runs
// for long, about 0.6 % of a core at 90 %) evenly among the burners.
type processAccount struct {
	start   time.Duration // the process's CPU time when the burners started
	burners []burnerShare // each burner's own CPU time since it started
}

// burnerShare is one burner's entry in its processAccount.
type burnerShare struct {
	acct *processAccount
	used atomic.Int64 // nanoseconds; published after every clock read
}

func newProcessAccount(burners int) (*processAccount, error) {
	start, err := processCPUTime()
	if err != nil {
		return nil, err
	}
	a := &processAccount{start: start, burners: make([]burnerShare, burners)}
	for i := range a.burners {
		a.burners[i].acct = a
	}
	return a, nil
}

func (a *processAccount) burner(i int) *burnerShare { return &a.burners[i] }

// publish records the burner's own CPU time since it started. Burners
// publish after every clock read, so the sum in overhead lags by one spin
// block at most.
func (b *burnerShare) publish(used time.Duration) { b.used.Store(int64(used)) }

// overhead is this burner's share of the process's CPU time that no
// burner used; 0 when the process clock cannot be read.
func (b *burnerShare) overhead() time.Duration {
	now, err := processCPUTime()
	if err != nil {
		return 0
	}
	rest := now - b.acct.start
	for i := range b.acct.burners {
		rest -= time.Duration(b.acct.burners[i].used.Load())
	}
	// A burner that has not published since its last block makes the
	// rest look larger by at most that block; never negative.
	return max(rest, 0) / time.Duration(len(b.acct.burners))
}

// dutyCycle is the load the burning threads hold, 0..1, shared with the
// host-utilisation controller.
type dutyCycle struct{ bits atomic.Uint64 }

func (d *dutyCycle) get() float64  { return math.Float64frombits(d.bits.Load()) }
func (d *dutyCycle) set(v float64) { d.bits.Store(math.Float64bits(v)) }
