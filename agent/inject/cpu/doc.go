// Package cpu is the CPU fault injector: each fault is one worker process
// (agent/worker) holding load_percent of a CPU on each of cores threads,
// with a duty cycle that corrects itself against the thread's own CPU
// clock (docs/users.md C5, R5).
//
// The injector reports what it achieved, not what it was asked: the
// measured_cpu_percent of a status is the worker's CPU time from
// /proc/<pid>/stat (utime+stime) over the wall time since the previous
// reading, per loaded core (L6: measure the result). The /proc root is a
// field so that tests read fixtures (docs/style.md, OS-facing code).
//
// Not yet: host_utilization_percent (a target for the whole host) is
// refused with a clear error until its controller loop exists.
package cpu
