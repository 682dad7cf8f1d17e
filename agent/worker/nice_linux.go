package worker

import (
	"fmt"

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
	return nil
}
