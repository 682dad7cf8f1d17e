// Package memory is the memory fault injector: each fault is one worker
// process (agent/worker, kind "memory") that holds a resident size, touched
// page by page in an anonymous mapping and corrected continuously against
// the kernel's count, optionally mlocked, optionally reached over a linear
// ramp.
//
// Before it starts anything the injector resolves the target (bytes, or a
// percentage of MemTotal) and refuses, naming the field and the limit, a
// target above what the host can give: MemAvailable minus a reserve that
// no fault may take (the kernel, the agent and the host's services need it
// to stay alive). This check is the injector's own floor; the local policy
// (agent/policy: max_percent_of_total, reserve_bytes) is checked before it
// by the Manager.
//
// The injector reports what it achieved, not what it was asked (L6): the
// resident_bytes of a status is read from /proc/<pid>/statm of the worker,
// the same figure the worker steers by. Once the settle time has passed
// (the ramp, plus a grace that grows with the size to touch), a resident
// size more than 1 % away from the target marks the fault degraded; it is
// never reported as a silent success. The /proc root is a field so that
// tests read fixtures.
//
// The worker gives itself oom_score_adj 1000 before it maps a page, so that
// under memory pressure the OOM killer takes the worker and not the agent;
// a fault that the OOM killer ended is reported as "worker exited: signal:
// killed".
package memory
