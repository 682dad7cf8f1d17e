package policy

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"slices"
	"strings"

	"github.com/turbulence-sre/turbulence/internal/faultspec"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Refusal is a fault refused by the policy. Rule names the policy field;
// the message gives the limit and what was asked.
type Refusal struct {
	Rule    string
	Message string
}

func (r *Refusal) Error() string { return "refused by agent policy " + r.Rule + ": " + r.Message }

func refuse(rule, format string, args ...any) *Refusal {
	return &Refusal{Rule: rule, Message: fmt.Sprintf(format, args...)}
}

// Host is what a check needs to know about the host and the agent now.
type Host struct {
	// TotalMemoryBytes and CPUs describe the host.
	TotalMemoryBytes uint64
	CPUs             uint32
	// ActiveFaults is how many faults the agent holds now.
	ActiveFaults int
}

// Check returns a *Refusal when the policy does not allow spec on host,
// or nil. It assumes spec passed faultspec.Validate.
func (p Policy) Check(spec *turbulencev1.FaultSpec, host Host) error {
	kind := faultspec.Kind(spec)
	if !slices.Contains(p.AllowedKinds, kind) {
		return refuse("allowed_kinds", "%s faults are not allowed on this host (allowed: %s)", kind, strings.Join(p.AllowedKinds, ", "))
	}
	if d := spec.GetDuration().AsDuration(); d > p.MaxDuration.D() {
		return refuse("max_duration", "duration %s is over this host's limit of %s", d, p.MaxDuration.D())
	}
	if host.ActiveFaults >= p.MaxConcurrentFaults {
		return refuse("max_concurrent_faults", "the agent already holds %d faults, the limit", host.ActiveFaults)
	}
	switch k := spec.GetKind().(type) {
	case *turbulencev1.FaultSpec_Cpu:
		return p.checkCPU(k.Cpu, host)
	case *turbulencev1.FaultSpec_Memory:
		return p.checkMemory(k.Memory, host)
	case *turbulencev1.FaultSpec_DiskFill, *turbulencev1.FaultSpec_DiskIo:
		// Filesystem type and free space are known only on the host: the
		// disk injector checks them with ExcludedFS and the disk floors.
		return nil
	case *turbulencev1.FaultSpec_Network:
		if slices.Contains(p.Network.ProtectedInterfaces, k.Network.GetInterface()) {
			return refuse("network.protected_interfaces", "interface %s is protected on this host", k.Network.GetInterface())
		}
		return p.checkTarget(k.Network.GetTarget())
	case *turbulencev1.FaultSpec_Partition:
		return p.checkTarget(k.Partition.GetTarget())
	}
	return nil
}

func (p Policy) checkCPU(s *turbulencev1.CPUSpec, host Host) error {
	load := s.GetLoadPercent()
	if s.GetHostUtilizationPercent() > 0 {
		load = s.GetHostUtilizationPercent()
	}
	if load > p.CPU.MaxLoadPercent {
		return refuse("cpu.max_load_percent", "load %d %% is over this host's limit of %d %%", load, p.CPU.MaxLoadPercent)
	}
	cores := s.GetCores()
	if cores == 0 {
		cores = host.CPUs
	}
	if host.CPUs > 0 && cores > host.CPUs {
		return refuse("cpu.cores", "%d cores asked, the host has %d", cores, host.CPUs)
	}
	if p.CPU.MaxCores > 0 && cores > p.CPU.MaxCores {
		return refuse("cpu.max_cores", "%d cores asked, this host's limit is %d", cores, p.CPU.MaxCores)
	}
	for _, c := range s.GetPinCpus() {
		if host.CPUs > 0 && c >= host.CPUs {
			return refuse("cpu.pin_cpus", "CPU %d does not exist: the host has CPUs 0..%d", c, host.CPUs-1)
		}
	}
	return nil
}

// MemoryTarget resolves a memory spec to bytes on a host.
func MemoryTarget(s *turbulencev1.MemorySpec, total uint64) uint64 {
	if pct := s.GetPercentOfTotal(); pct > 0 {
		return total / 100 * uint64(pct)
	}
	return s.GetBytes()
}

func (p Policy) checkMemory(s *turbulencev1.MemorySpec, host Host) error {
	want := MemoryTarget(s, host.TotalMemoryBytes)
	if host.TotalMemoryBytes == 0 {
		return refuse("memory", "the host's total memory is unknown")
	}
	if limit := host.TotalMemoryBytes / 100 * uint64(p.Memory.MaxPercentOfTotal); want > limit {
		return refuse("memory.max_percent_of_total", "%d bytes asked, over %d %% of %d bytes (%d)", want, p.Memory.MaxPercentOfTotal, host.TotalMemoryBytes, limit)
	}
	if reserve := uint64(p.Memory.ReserveBytes); want+reserve > host.TotalMemoryBytes {
		return refuse("memory.reserve_bytes", "%d bytes asked would leave less than the %s reserve of %d bytes total", want, p.Memory.ReserveBytes, host.TotalMemoryBytes)
	}
	return nil
}

// ExcludedFS reports a refusal when fsType is excluded by the policy.
func (p Policy) ExcludedFS(path, fsType string) error {
	if slices.Contains(p.Disk.ExcludedFilesystems, fsType) {
		return refuse("disk.excluded_filesystems", "%s is on a %s filesystem, which this host excludes", path, fsType)
	}
	return nil
}

func (p Policy) checkTarget(t *turbulencev1.TrafficTarget) error {
	for _, s := range t.GetCidrs() {
		target, err := netip.ParsePrefix(s)
		if err != nil {
			continue // faultspec.Validate refuses it
		}
		for _, ps := range p.Network.ProtectedCIDRs {
			prot, err := netip.ParsePrefix(ps)
			if err == nil && target.Overlaps(prot) {
				return refuse("network.protected_cidrs", "target %s includes protected addresses %s", target, prot)
			}
		}
	}
	return nil
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
