// Package inject applies and reverts faults on this host. It owns the
// life cycle of every fault the agent holds.
//
// An Injector knows one fault kind ("cpu", "memory", "disk_fill",
// "network"…) and returns a Handle for each fault it applied. The Manager
// holds faults by ID and is the only place that decides when a fault ends:
//
//   - Invariant 1 (no fault outlives its deadline): Apply arms the revert
//     timer (time.AfterFunc at the deadline) and registers the fault BEFORE
//     it calls the injector. If the injector is slow, the deadline still
//     holds: a revert requested while Apply runs is carried out the moment
//     Apply returns. The deadline is min(fault.deadline, now+duration).
//   - Invariant 5 (kill switch): Halt reverts everything and refuses every
//     later Apply until Resume (the fleet halt, from the controller);
//     HaltLocally does the same until ResumeLocally (the host's operator,
//     over agent/localapi). The two are separate flags so that neither side
//     can lift the other's halt.
//   - Invariant 6 (bad input changes nothing): Apply validates the spec with
//     internal/faultspec before anything is registered, and an Injector that
//     fails must leave nothing behind; the Manager then forgets the fault.
//   - Idempotency (docs/style.md, OS-facing code): Apply of a held or ended fault ID answers
//     its current status; Revert of an unknown or ended one is a no-op.
//
// Faults that end — deadline, revert, halt, lease expiry, agent stopping, or
// a worker that exits by itself — are recorded as REVERTED with a reason
// and queued until the session reports them (Report / AckEnded).
//
// Why the deadline timers live here and not in agent/killswitch: arming the
// timer and registering the fault must happen under one lock, before the
// injector runs; splitting them across packages would open exactly the
// window invariant 1 forbids. The kill switch package holds the lease
// watchdog, which only needs RevertAll.
//
// Concurrency: every Manager method is safe for concurrent use. Injector.Apply
// and Handle.Revert are called without the Manager's lock held; a Handle
// must allow Observe concurrently with Revert.
//
// A fault kind implements Kind (kind.go): Apply and its Handle, Recover
// from its own opaque undo record, Sweep of its own marks, and Guarded. The
// Manager journals a kind's undo record when the kind asks (RecordUndo,
// before it changes the host) and after Apply, and starts a guardian for a
// guarded kind before Apply (agent/guardian).
//
// Checklist for a new fault kind: faultspec types and validation, policy
// knobs, a package implementing Kind (plus its ops seam and fake), its
// worker if any, its marks naming their owner, the registration line in
// agent/kinds.go, the capability in hostinfo, tests, docs.
package inject
