// Package state is the controller's replicated data model: the agents, the
// faults, the fleet halt flag, a bounded event log and the request IDs
// already applied.
//
// State is changed only by the Apply* methods, which the raft FSM calls in
// log order on every replica. They are deterministic: they never read a
// clock, draw a random number or touch the network; every time they record
// comes from the log entry (Meta.Time, the leader's proposed_at). Two
// replicas that apply the same log therefore hold the same state.
//
// Readers get clones (proto.Clone), never pointers into the state, so a
// caller cannot change replicated data behind raft's back. Changed returns
// a channel that is closed on the next change, which is how WatchEvents
// follows the log without polling.
//
// Concurrency: one RWMutex guards everything. Apply* and Replace take the
// write lock; every read takes the read lock. Replace (snapshot restore)
// builds a complete new dataset first and swaps it in under the write
// lock, so a reader sees either the old state or the new one, never a mix.
package state
