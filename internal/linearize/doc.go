// Package linearize checks client-side histories of the controller's
// fault registry for linearizability with porcupine
// (github.com/anishathalye/porcupine), as etcd's robustness tests do.
//
// It holds three things shared by the in-process cluster test
// (controller/linearizability_test.go) and the process-level chaos tests
// (test/chaos), so that both check the very same promises:
//
//   - Model, the registry as its clients see it, as a sequential
//     specification: every acknowledged fault is there afterwards, a
//     retried request ID never makes a second fault, no fault is created
//     while the fleet is halted (invariant 5), and no consistent read goes
//     back in time;
//   - Client, which runs one logical operation to a definite answer,
//     retrying at random nodes with the same request ID after an answer
//     that leaves the outcome open (Retryable);
//   - History, a goroutine-safe recorder of operations with their call and
//     return times, and Check, which runs porcupine over it and, when the
//     history is not linearizable, writes porcupine's visualisation.
//
// Reads in a history must be consistent reads (the controller's
// forward.MDConsistent metadata, which the caller passes as
// Client.Consistent: this package imports nothing under controller/).
// Plain reads are served from the local state of whichever node answers
// and may lag by design (docs/design.md: "Any node answers reads"), so they are
// not linearizable and are not modelled.
//
// Only tests import this package, like internal/testutil.
package linearize
