// Package hostseries keeps, on the controller leader, a short time series
// of each agent's host metrics as its heartbeats bring them
// (docs/hostmetrics.md). It is soft state like liveness (docs/design.md,
// controller state): outside raft, lost on a leader change and rebuilt
// from the next heartbeats, so a new leader's series starts empty.
//
// Each agent has a fixed-size ring of compact samples, allocated at its
// first sample and reused from then on: recording a heartbeat allocates
// nothing (BenchmarkStore_Record), which matters with 10,000 agents
// reporting every second. Values are kept as float32 (7 significant
// digits, far finer than what is measured) and read back as the shortest
// decimal that float32 holds, so that 12.3 is read as 12.3.
//
// The metric names are those of a host probe (controller/experiment's
// HostProbe): cpu_percent, memory_used_percent, load1, disk_used_percent,
// disk_io_bytes_per_second and network_bytes_per_second; memory_used_bytes,
// load5 and load15 are kept too for people and reports.
package hostseries
