// Package guardian keeps a fault whose kind has no worker process (a disk
// fill, a qdisc tree, an nftables table) from outliving its deadline or its
// lease when the agent that applied it is gone: killed, hung, or never
// restarted (invariant 3; docs/design.md, "The guardian").
//
// A guardian is the agent binary re-executed as `turbulence-agent guard
// --state-dir DIR --fault-id ID`, in a session of its own and without
// PR_SET_PDEATHSIG, so that it outlives the agent. It knows the fault only
// from the agent's journal, which it reads without taking its lock
// (journal.ReadFile), and the lease only from the lease file the agent
// rewrites at every renewal (agent/leasefile). Its standard input is a pipe from
// the agent: end of file means the agent is gone.
//
// Who takes the fault back. The agent and the guardian never both do: every
// revert of a guarded fault, by either, runs under the fault's lock (an
// flock on DIR/guard/<fault>) and writes the fault's outcome there before
// the lock is released. Whoever takes the lock second finds the outcome and
// does nothing to the host. The agent reverts at the deadline or when the
// lease expires, as for every fault; the guardian acts only when the agent
// has not: at the deadline (or the lease's end) plus Grace while the agent
// is alive, at once when its pipe says the agent is gone. Because the agent
// releases a resource (an interface, a table name) only after the fault's
// outcome is written, a late guardian can never take back a newer fault on
// the same resource.
//
// Life of a guardian: started after the fault's intent is journaled and
// before the kind touches the host; ends when the agent closes the fault in
// the journal (the agent then closes the pipe, waits for it and removes the
// lock file), or after it took the fault back itself. Start-up recovery
// kills the orphan guardians of its own state directory before it replays
// the journal, and reads their outcomes from the lock files.
package guardian
