// Package bootclock places the agent's deadlines and lease on the
// kernel's CLOCK_BOOTTIME, the one clock that every process of a boot
// shares and that nobody can set: a step of the wall clock (an operator's
// date, an NTP step, a VM restored from a snapshot) moves it not at all.
//
// The controller speaks wall-clock times. The agent turns each into a
// point on this clock the moment it arrives (docs/design.md, "Clocks"),
// and the processes that outlive a frozen or dead agent — guardians
// (agent/guardian) and workers (agent/worker) — judge its deadlines and
// lease here, not on the wall clock. An Instant names its boot, so a point
// read back after a reboot is known to mean nothing: no process of the old
// boot is left to hold a fault, and the agent's start-up recovery takes
// back what the journal lists whatever its deadlines said.
//
// It imports nothing of the agent's, so that the journal, the lease file,
// workers and guardians can all use it.
package bootclock
