// Package hostmetrics samples the whole host's figures that the agent
// reports in its heartbeats: CPU busy percentage, memory use, load
// averages, the usage of the filesystems it watches, disk I/O and
// network throughput (docs/hostmetrics.md).
//
// The figures come from gopsutil (github.com/shirou/gopsutil/v3), which
// reads the kernel's /proc and /sys files; the /proc and /sys roots are
// Config fields handed to it through its context, so tests can point it
// at fixtures. The one file read here by hand is /sys/block, to tell the
// physical disks from partitions and virtual devices: gopsutil lists
// every line of /proc/diskstats, and summing a disk with its partitions
// (or a device-mapper volume with the disk under it) would count the
// same bytes twice.
//
// A Sampler runs on its own goroutine and keeps the latest sample; a
// heartbeat only copies it (Latest), so a slow /proc read never delays
// the message that keeps the agent's lease (invariant 2). Percentages
// and rates are over the time between two samples: the first sample has
// none of them, and a counter that went backwards (a device removed, a
// counter reset) leaves its rate out of that sample rather than report
// a negative or absurd figure.
package hostmetrics
