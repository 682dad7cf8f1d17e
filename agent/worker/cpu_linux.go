package worker

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// threadCPUTime returns the CPU time used so far by the calling OS thread.
func threadCPUTime() (time.Duration, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0, fmt.Errorf("read thread CPU clock: %w", err)
	}
	return time.Duration(ts.Nano()), nil
}

// processCPUTime returns the CPU time used so far by every thread of the
// process.
func processCPUTime() (time.Duration, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_PROCESS_CPUTIME_ID, &ts); err != nil {
		return 0, fmt.Errorf("read process CPU clock: %w", err)
	}
	return time.Duration(ts.Nano()), nil
}

// pin binds the calling OS thread to one CPU.
func pin(cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	// pid 0 is the calling thread, not the whole process.
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("pin thread to CPU %d: %w", cpu, err)
	}
	return nil
}
