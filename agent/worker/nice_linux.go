package worker

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// applyNice sets the nice level of every thread of the worker.
//
// Linux nice values belong to threads, not processes, and the Go runtime
// has started several threads before main runs: setpriority(PRIO_PROCESS)
// would reach only the calling one. PRIO_PGRP reaches every thread of every
// process in the group under the kernel's tasklist lock, and threads started
// later inherit the value from the thread that clones them. The worker leads
// its own group (Command sets Setpgid), so the group is exactly the worker.
func applyNice(nice int) error {
	if pgrp, pid := unix.Getpgrp(), unix.Getpid(); pgrp != pid {
		return fmt.Errorf("--nice %d: the worker must lead its own process group (pgid %d, pid %d); start it with worker.Start", nice, pgrp, pid)
	}
	if err := unix.Setpriority(unix.PRIO_PGRP, 0, nice); err != nil {
		return fmt.Errorf("set nice level %d: %w", nice, err)
	}
	// A thread the runtime was cloning during that call copied the old
	// value before it joined the group's list and kept it (seen: one
	// thread at 0 of seven). Set each thread by its ID until a pass finds
	// no thread it had not already set: later threads are cloned from
	// reniced ones and inherit the value.
	done := map[int]bool{}
	for range maxNicePasses {
		tids, err := threadIDs()
		if err != nil {
			return fmt.Errorf("set nice level %d: %w", nice, err)
		}
		fresh := false
		for _, tid := range tids {
			if done[tid] {
				continue
			}
			fresh = true
			// PRIO_PROCESS with a thread ID addresses that thread alone.
			if err := unix.Setpriority(unix.PRIO_PROCESS, tid, nice); err != nil && err != unix.ESRCH {
				return fmt.Errorf("set nice level %d of thread %d: %w", nice, tid, err)
			}
			done[tid] = true
		}
		if !fresh {
			return nil
		}
	}
	return fmt.Errorf("set nice level %d: threads kept appearing after %d passes", nice, maxNicePasses)
}

// maxNicePasses bounds applyNice's passes over the thread list; the Go
// runtime starts a handful of threads at start-up, so two or three suffice.
const maxNicePasses = 10

// threadIDs lists the IDs of the calling process's threads.
func threadIDs() ([]int, error) {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, err
	}
	tids := make([]int, 0, len(ents))
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}
