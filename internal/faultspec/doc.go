// Package faultspec holds the fault domain rules shared by the controller
// and the agent: the kind names, the hard per-field bounds and the
// validation of a FaultSpec.
//
// Invariant 6 (bad input gets a clear error and changes nothing): the
// controller validates a spec before it proposes anything to raft, and the
// agent validates it again before it journals or applies anything, with
// this same code. Every error names the field and the limit.
package faultspec
