package worker

import "syscall"

// sysProcAttr puts the worker in its own process group and has the kernel
// kill it when the agent dies (invariant 3: no fault outlives its agent).
//
// PR_SET_PDEATHSIG fires when the *thread* that forked the child exits.
// The Go runtime only ends threads whose goroutine exits while locked with
// runtime.LockOSThread, which the agent never does around Start.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
