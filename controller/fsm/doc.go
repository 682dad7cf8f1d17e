// Package fsm is the controller's raft.FSM: it decodes raft log entries
// (raftv1.LogEntry) and applies them to the replicated state in package
// state, and it writes and reads snapshots.
//
// Dispatch goes through a table built in New, keyed by the type of the
// entry's command; a new command is one new line there plus a state
// method (see the "new mutating RPC" checklist in docs/style.md, tooling and checklists).
//
// Failure policy: an entry that cannot be decoded, or that carries no
// command this binary knows, makes Apply panic. A replica that cannot
// apply an entry must stop rather than silently diverge from the others.
// Business rejections (unknown agent, fleet halted, bad transition) are not
// failures: they are returned as the entry's response, an error value, and
// the state is unchanged, except for the audit log: an entry that
// carries an Audit (every entry proposed for a ControlService call) gets
// its audit record in the same Apply, applied or rejected, so the record
// and the write are one raft entry and commit together.
//
// Snapshot format: a length-delimited SnapshotHeader (format version)
// followed by length-delimited SnapshotRecords (protodelim), in the order
// state.Records gives. Restore reads the whole stream and hands it to
// state.Replace, which builds a new dataset and swaps it in under its lock.
package fsm
