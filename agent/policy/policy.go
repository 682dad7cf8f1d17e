package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/turbulence-sre/turbulence/internal/config"
	"github.com/turbulence-sre/turbulence/internal/faultspec"
	"github.com/turbulence-sre/turbulence/internal/limits"
)

// MaxConcurrentFaultsLimit is the most max_concurrent_faults may allow: half
// of what one heartbeat may list (internal/limits.MaxHeldFaults), so that
// the faults held always leave room for faults that ended and are being
// reported.
const MaxConcurrentFaultsLimit = limits.MaxHeldFaults / 2

// DefaultPath is where the agent reads its policy.
const DefaultPath = "/etc/turbulence/agent.yaml"

// Policy is the agent's local policy. Every field has a safe default
// (Default); a file only needs the fields it changes.
type Policy struct {
	// AllowedKinds lists the fault kinds this host accepts
	// (cpu, memory, disk_fill, disk_io, network, partition).
	AllowedKinds []string `json:"allowed_kinds"`
	// MaxDuration caps every fault's duration; longer requests are refused.
	MaxDuration config.Duration `json:"max_duration"`
	// MaxConcurrentFaults caps the faults held at once; at most
	// MaxConcurrentFaultsLimit.
	MaxConcurrentFaults int `json:"max_concurrent_faults"`
	// MaxNewFaultsPerMinute caps how fast new faults may arrive.
	MaxNewFaultsPerMinute int `json:"max_new_faults_per_minute"`
	// WorkerNice is the nice level of worker processes (0..19).
	WorkerNice int `json:"worker_nice"`

	CPU     CPU     `json:"cpu"`
	Memory  Memory  `json:"memory"`
	Disk    Disk    `json:"disk"`
	Network Network `json:"network"`
}

// CPU limits CPU faults.
type CPU struct {
	// MaxLoadPercent caps the load per core (and host utilisation targets).
	MaxLoadPercent uint32 `json:"max_load_percent"`
	// MaxCores caps the number of cores loaded; 0 means all may be.
	MaxCores uint32 `json:"max_cores"`
}

// Memory limits memory faults.
type Memory struct {
	// MaxPercentOfTotal caps a memory fault as a share of total memory.
	MaxPercentOfTotal uint32 `json:"max_percent_of_total"`
	// ReserveBytes is memory no fault may ever take: a fault is refused if
	// it would leave less than this much of total memory unclaimed by it.
	ReserveBytes config.ByteSize `json:"reserve_bytes"`
}

// Disk limits disk faults.
type Disk struct {
	// MinFreeBytes and MinFreePercent are floors a fill never crosses.
	MinFreeBytes   config.ByteSize `json:"min_free_bytes"`
	MinFreePercent uint32          `json:"min_free_percent"`
	// ExcludedFilesystems are filesystem types no disk fault may target.
	ExcludedFilesystems []string `json:"excluded_filesystems"`
}

// Network limits network faults and partitions.
type Network struct {
	// ProtectedInterfaces may never be impaired.
	ProtectedInterfaces []string `json:"protected_interfaces"`
	// ProtectedCIDRs are never targeted; the controllers' addresses are
	// always added to them by the agent.
	ProtectedCIDRs []string `json:"protected_cidrs"`
	// ReplaceRootQdisc lets a network fault replace a root qdisc someone
	// configured on the interface (the agent puts it back on revert, for
	// the kinds it can recreate). Off by default: a tuned tree is not
	// touched (invariant 4).
	ReplaceRootQdisc bool `json:"replace_root_qdisc"`
}

// Default is the policy of an agent with no file: every kind allowed,
// faults of at most one hour, CPU up to 100 %, memory up to 80 % with
// 512 MiB reserved, disks kept 5 % and 1 GiB free.
func Default() Policy {
	return Policy{
		AllowedKinds:          slices.Clone(faultspec.AllKinds),
		MaxDuration:           config.Duration(time.Hour),
		MaxConcurrentFaults:   16,
		MaxNewFaultsPerMinute: 60,
		WorkerNice:            0,
		CPU:                   CPU{MaxLoadPercent: 100},
		Memory:                Memory{MaxPercentOfTotal: 80, ReserveBytes: 512 << 20},
		Disk:                  Disk{MinFreeBytes: 1 << 30, MinFreePercent: 5, ExcludedFilesystems: []string{"proc", "sysfs", "devtmpfs", "cgroup2", "nfs", "nfs4"}},
		Network:               Network{ProtectedInterfaces: []string{"lo"}},
	}
}

// Load reads the policy file at path over the defaults. A missing file
// is not an error when missingOK is set: the defaults apply.
func Load(path string, missingOK bool) (Policy, error) {
	p := Default()
	if err := config.LoadFile(path, &p); err != nil {
		if missingOK && isNotExist(err) {
			return Default(), nil
		}
		return Policy{}, err
	}
	if err := p.Validate(); err != nil {
		return Policy{}, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// Validate lists every problem in the policy itself.
func (p Policy) Validate() error {
	var probs []string
	for _, k := range p.AllowedKinds {
		if !slices.Contains(faultspec.AllKinds, k) {
			probs = append(probs, fmt.Sprintf("allowed_kinds: unknown kind %q (known: %s)", k, strings.Join(faultspec.AllKinds, ", ")))
		}
	}
	if d := p.MaxDuration.D(); d < faultspec.MinDuration || d > faultspec.MaxDuration {
		probs = append(probs, fmt.Sprintf("max_duration: must be between %s and %s, got %s", faultspec.MinDuration, faultspec.MaxDuration, d))
	}
	if p.MaxConcurrentFaults < 1 || p.MaxConcurrentFaults > MaxConcurrentFaultsLimit {
		probs = append(probs, fmt.Sprintf("max_concurrent_faults: must be between 1 and %d, got %d", MaxConcurrentFaultsLimit, p.MaxConcurrentFaults))
	}
	if p.MaxNewFaultsPerMinute < 1 {
		probs = append(probs, "max_new_faults_per_minute: must be at least 1")
	}
	if p.WorkerNice < 0 || p.WorkerNice > 19 {
		probs = append(probs, fmt.Sprintf("worker_nice: must be between 0 and 19, got %d", p.WorkerNice))
	}
	if p.CPU.MaxLoadPercent < 1 || p.CPU.MaxLoadPercent > 100 {
		probs = append(probs, fmt.Sprintf("cpu.max_load_percent: must be between 1 and 100, got %d", p.CPU.MaxLoadPercent))
	}
	if p.Memory.MaxPercentOfTotal > 100 {
		probs = append(probs, fmt.Sprintf("memory.max_percent_of_total: must be at most 100, got %d", p.Memory.MaxPercentOfTotal))
	}
	if p.Disk.MinFreePercent > 100 {
		probs = append(probs, fmt.Sprintf("disk.min_free_percent: must be at most 100, got %d", p.Disk.MinFreePercent))
	}
	for _, c := range p.Network.ProtectedCIDRs {
		if _, err := netip.ParsePrefix(c); err != nil {
			probs = append(probs, fmt.Sprintf("network.protected_cidrs: %q is not a CIDR", c))
		}
	}
	if len(probs) > 0 {
		return fmt.Errorf("invalid policy: %s", strings.Join(probs, "; "))
	}
	return nil
}
