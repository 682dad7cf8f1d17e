// Package worker holds the processes that carry load-type faults: the
// agent binary re-executed as `turbulence-agent worker <kind> ...`.
//
// Why a separate process: a fault's load must never be able to take the
// agent down with it (the OOM killer, a stuck loop), and the agent must be
// able to end it by a signal at any time. Each worker
//
//   - is started from a FIXED argv built by Command, never through a shell
//     (docs/users.md L9); this is the only package that imports os/exec;
//   - runs in its own process group, so that Stop reaches every process it
//     may have started, and carries PR_SET_PDEATHSIG=SIGKILL on Linux, so
//     that it dies with the agent (invariant 3, docs/design.md "Workers");
//   - refuses to run without a deadline and exits by itself when it is
//     reached, even if the agent never tells it to (invariant 1, defence in
//     depth; docs/users.md L1, L12 — stress-ng's 24 h default is the counter
//     example): a thread asleep on the kernel's clock, at real-time
//     priority when the worker may, ends the process at the deadline even
//     on a saturated host (deadline_linux.go);
//   - exits 0 at its deadline or on SIGTERM, 2 on a usage error, 1 when it
//     could not do its job.
//
// The CPU worker holds a duty cycle per core with feedback on the thread's
// own CPU clock, so that competing load on the host does not make the
// measured load drift below the target (docs/users.md C5, R5).
//
// The memory worker holds a RESIDENT size, as /proc/<pid>/statm counts it,
// not a mapping size: it touches pages of one anonymous mapping (never the
// Go heap) and corrects against its own statm every memoryTick, touching
// more or releasing with MADV_DONTNEED, so that its own runtime is part of
// the target and pages the kernel reclaimed are touched again. It sets
// oom_score_adj 1000 before it maps anything (memory.go has the details).
//
// Every worker takes an optional --nice N, applied by the worker itself to
// its whole process group before it starts work (nice_linux.go says why
// not by the agent after start).
package worker
