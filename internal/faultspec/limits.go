package faultspec

import (
	"time"

	"github.com/turbulence-sre/turbulence/internal/limits"
)

// Hard bounds. These are sanity limits on the wire format, checked on both
// sides; each agent's local policy (invariant 4) is usually much tighter.
// The sizes of lists and texts are internal/limits' (docs/limits.md); they
// are repeated here under the names validation uses.
const (
	// MaxDuration is the longest fault anyone can ask for.
	MaxDuration = 24 * time.Hour
	// MinDuration is the shortest; below it the revert timer and the
	// worker's own deadline cannot be told apart from noise.
	MinDuration = time.Second
	// MaxCores bounds cpu.cores and the length of cpu.pin_cpus.
	MaxCores = limits.MaxCores
	// MaxCIDRs and MaxPorts bound the targeting lists.
	MaxCIDRs = limits.MaxCIDRs
	MaxPorts = limits.MaxPorts
	// MaxPathLen bounds disk paths.
	MaxPathLen = limits.MaxPathLen
	// MaxInterfaceLen is IFNAMSIZ-1.
	MaxInterfaceLen = limits.MaxInterfaceLen
	// MaxNetemDelay bounds netem delay and jitter.
	MaxNetemDelay = 60 * time.Second
	// MaxIOWorkers bounds disk_io.workers.
	MaxIOWorkers = 64
	// MaxBlockSize bounds disk_io.block_size_bytes.
	MaxBlockSize = 64 << 20
)

// Kind names, as used in policies, capabilities and the CLI.
const (
	KindCPU       = "cpu"
	KindMemory    = "memory"
	KindDiskFill  = "disk_fill"
	KindDiskIO    = "disk_io"
	KindNetwork   = "network"
	KindPartition = "partition"
)

// AllKinds lists every fault kind of the catalogue.
var AllKinds = []string{KindCPU, KindMemory, KindDiskFill, KindDiskIO, KindNetwork, KindPartition}
