package worker

import (
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"github.com/turbulence-sre/turbulence/agent/bootclock"
)

// exitAtDeadline ends the worker process with code at deadline, from a
// thread of its own that sleeps on the kernel's clock.
//
// Invariant 1, defence in depth: the work's context also carries the
// deadline, but a Go timer wakes through the netpoller, whose wait has
// millisecond granularity, and the worker must then wind its threads down
// before it returns — measured here at 2.8 ms past the deadline at p50. An
// absolute clock_nanosleep wakes within about 0.2 ms, and exit_group ends
// every thread at once: nothing a load worker holds (CPU time, anonymous
// memory, open scratch files, which the agent deletes) needs more than the
// kernel's own teardown.
//
// The deadline comes as wall-clock nanoseconds (the agent's argv), and is
// turned into a point on CLOCK_BOOTTIME here, on arrival, and slept to on
// that clock: a step of the wall clock afterwards neither ends the worker
// early (forward) nor keeps it past its deadline (back). See
// agent/bootclock and docs/design.md, "Clocks". Where the boot clock
// cannot be read, the worker sleeps on CLOCK_REALTIME, as it did before.
//
// When lapsed is not nil the same thread also wakes every leaseCheckEvery
// and asks it whether the owning agent's lease has run out; if so the
// process ends with ExitLeaseExpired (invariant 2 while the agent is
// frozen). It is this thread, not one of its own, because this one is
// asleep anyway and, at real-time priority, wakes on time under the
// heaviest load. A check is a stat and a read of a few bytes that the
// agent has just written, so from the page cache: it cannot hold the
// deadline up by more than a system call.
func exitAtDeadline(deadline time.Time, code int, lapsed func() bool) {
	clock, end := int32(unix.CLOCK_REALTIME), deadline.UnixNano()
	if at, err := bootclock.At(deadline); err == nil {
		clock, end = unix.CLOCK_BOOTTIME, at.Nanos
	}
	go func() {
		// The thread sleeps in the kernel; locking keeps the runtime from
		// having to hand it a goroutine it cannot run for the whole fault.
		runtime.LockOSThread()
		// Real-time priority for this thread alone, when the worker may
		// (root, as the agent runs): it sleeps for the whole fault and
		// uses no CPU, but when it wakes it runs at once, ahead of the
		// load — this worker's or anything else saturating the host.
		// Without the privilege it stays at the worker's nice level.
		_ = unix.SchedSetAttr(0, &unix.SchedAttr{Policy: unix.SCHED_FIFO, Priority: 1}, 0)
		checkLease := false
		for {
			var now unix.Timespec
			if err := unix.ClockGettime(clock, &now); err != nil {
				return // the context's own deadline still ends the work
			}
			if now.Nano() >= end {
				os.Exit(code)
			}
			if checkLease && lapsed() {
				os.Exit(ExitLeaseExpired)
			}
			wake := end
			if next := now.Nano() + int64(leaseCheckEvery); lapsed != nil && next < wake {
				wake = next
			}
			ts := unix.NsecToTimespec(wake)
			err := unix.ClockNanosleep(clock, unix.TIMER_ABSTIME, &ts, nil)
			if err != nil && err != unix.EINTR {
				// The context's own deadline still ends the work.
				return
			}
			checkLease = err == nil && lapsed != nil
		}
	}()
}
