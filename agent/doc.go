// Package agent is the composition root of turbulence-agent: it builds the
// fault manager and its injectors, the lease watchdog and the controller
// session from a Config, and runs them under one Run(ctx).
//
// Shutdown order (invariant 3: stopping the service reverts everything
// before exit; docs/protocol.md §9), when ctx is done:
//
//  1. stop the lease watchdog (everything is reverted next anyway);
//  2. close the fault manager: new commands are refused and every fault is
//     reverted with reason "agent stopping"; this returns only once every
//     worker has been waited for;
//  3. best effort, one last heartbeat listing the ended faults, then a
//     half-close so that it is delivered, not cut off (2 s in all);
//  4. close the session;
//  5. stop the metrics endpoint, if Config.MetricsAddr set one (metrics.go),
//     then the local socket (agent/localapi) and remove it: both answer
//     until the very end, so a last scrape sees the faults gone.
//
// The local socket is bound before the first dial to a controller and needs
// none: `turbulence-agent halt` on the host reverts every fault and refuses
// new ones until `turbulence-agent resume` (invariant 5, local.go). An agent
// that cannot bind it (another agent serves it, an unsafe directory) does
// not run. The local halt is recorded in the state directory
// (LocalHaltFile) before anything is reverted and restored at start, so a
// crashed and restarted agent is still halted.
//
// Before anything else, Run takes back what an earlier run left
// (recover.go: the journal's open faults through their kinds' Recover,
// then each kind's Sweep of its own marks; invariants 3 and 7), and takes
// no new fault until that is complete. The fault kinds are registered in
// kinds.go. Workers carry PR_SET_PDEATHSIG, so even a SIGKILLed agent
// takes its workers with it; every other fault has a guardian process
// that outlives the agent (agent/guardian, docs/design.md).
package agent
