// Package journal is the agent's append-only, fsynced record of the faults
// it applies and what is needed to take each one back.
//
// Invariant 3 (no fault outlives its agent): before a fault touches the
// host, an Intent record naming it is appended and fsynced; once applied,
// an Applied record adds the revert data (a worker's PID and start time, a
// qdisc handle, a fill path…); once reverted, a Reverted record closes it.
// At start-up the agent opens the journal, reverts every fault it lists as
// still open, and compacts the file.
//
// Format: a sequence of frames, each a 4-byte big-endian payload length, a
// 4-byte CRC-32C of the payload, and the payload, a JSON-encoded Record.
// A crash can cut the file at any byte; Open reads frames until the first
// one that is short or fails its checksum and treats the rest as a torn
// write. That is safe because a record is only relied on after Append has
// returned, which is after fsync: a torn tail is always a record whose
// action had not started (Intent) or had already happened (Applied,
// Reverted), and the sweep finds anything the journal no longer names.
package journal
