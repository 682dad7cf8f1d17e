// Package limits holds the bound of every string, bytes, repeated and map
// field that crosses the controller's edge: the gRPC requests of every
// service, the agents' stream messages (Hello above all), the raft log
// entries, and the records that list calls return. docs/limits.md
// explains each bound and the arithmetic that keeps every list page under
// the gRPC message cap.
//
// The bounds live in one table (table.go), keyed by the field's full
// protobuf name. Check walks a message by reflection and refuses it when
// any field breaks its bound, naming the field and the limit; a field
// that has no entry is refused too, so that forgetting a bound fails
// closed. TestEveryFieldBounded walks the descriptors of every service
// and fails when a field has no entry, so a new field cannot be added
// unbounded. MaxSize computes a message's largest encoding from the same
// table; the page maxima are chosen so that a full page of the largest
// records fits in MaxMessageBytes.
//
// The package imports nothing of this module but the generated protobuf
// code, so both sides (controller, turbctl, the agent) can use it.
package limits
