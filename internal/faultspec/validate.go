package faultspec

import (
	"math"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Validate checks a spec against the hard bounds and returns an *Error
// listing every problem, or nil. It never modifies the spec. Call it after
// defaults are filled in: a missing duration is an error here.
func Validate(spec *turbulencev1.FaultSpec) error {
	var c collector
	if spec == nil {
		c.addf("spec", "is required")
		return c.err()
	}
	validateDuration(&c, "spec.duration", spec.GetDuration(), MinDuration, MaxDuration, true)
	switch k := spec.GetKind().(type) {
	case *turbulencev1.FaultSpec_Cpu:
		validateCPU(&c, k.Cpu)
	case *turbulencev1.FaultSpec_Memory:
		validateMemory(&c, k.Memory)
	case *turbulencev1.FaultSpec_DiskFill:
		validateDiskFill(&c, k.DiskFill)
	case *turbulencev1.FaultSpec_DiskIo:
		validateDiskIO(&c, k.DiskIo)
	case *turbulencev1.FaultSpec_Network:
		validateNetwork(&c, k.Network)
	case *turbulencev1.FaultSpec_Partition:
		validatePartition(&c, k.Partition)
	default:
		c.addf("spec.kind", "one of %s is required", strings.Join(AllKinds, ", "))
	}
	return c.err()
}

func validateDuration(c *collector, field string, d *durationpb.Duration, lo, hi time.Duration, required bool) {
	if d == nil {
		if required {
			c.addf(field, "is required (between %s and %s)", lo, hi)
		}
		return
	}
	if err := d.CheckValid(); err != nil {
		c.addf(field, "is not a valid duration: %v", err)
		return
	}
	v := d.AsDuration()
	if v < lo || v > hi {
		c.addf(field, "must be between %s and %s, got %s", lo, hi, v)
	}
}

func validateCPU(c *collector, s *turbulencev1.CPUSpec) {
	if s.GetHostUtilizationPercent() > 0 {
		if s.GetHostUtilizationPercent() > 100 {
			c.addf("spec.cpu.host_utilization_percent", "must be between 1 and 100, got %d", s.GetHostUtilizationPercent())
		}
		if s.GetLoadPercent() != 0 {
			c.addf("spec.cpu.load_percent", "must be unset when host_utilization_percent is set")
		}
	} else if s.GetLoadPercent() < 1 || s.GetLoadPercent() > 100 {
		c.addf("spec.cpu.load_percent", "must be between 1 and 100, got %d", s.GetLoadPercent())
	}
	if s.GetCores() > MaxCores {
		c.addf("spec.cpu.cores", "must be at most %d, got %d", MaxCores, s.GetCores())
	}
	if n := len(s.GetPinCpus()); n > 0 {
		if n > MaxCores {
			c.addf("spec.cpu.pin_cpus", "may list at most %d CPUs, got %d", MaxCores, n)
		}
		if s.GetCores() != 0 && int(s.GetCores()) != n {
			c.addf("spec.cpu.pin_cpus", "lists %d CPUs but cores is %d", n, s.GetCores())
		}
		seen := make(map[uint32]bool, n)
		for _, cpu := range s.GetPinCpus() {
			if cpu >= MaxCores {
				c.addf("spec.cpu.pin_cpus", "CPU %d is out of range 0..%d", cpu, MaxCores-1)
			}
			if seen[cpu] {
				c.addf("spec.cpu.pin_cpus", "CPU %d is listed twice", cpu)
			}
			seen[cpu] = true
		}
	}
}

func validateMemory(c *collector, s *turbulencev1.MemorySpec) {
	switch sz := s.GetSize().(type) {
	case *turbulencev1.MemorySpec_Bytes:
		if sz.Bytes == 0 {
			c.addf("spec.memory.bytes", "must be greater than 0")
		}
	case *turbulencev1.MemorySpec_PercentOfTotal:
		if sz.PercentOfTotal < 1 || sz.PercentOfTotal > 100 {
			c.addf("spec.memory.percent_of_total", "must be between 1 and 100, got %d", sz.PercentOfTotal)
		}
	default:
		c.addf("spec.memory.size", "one of bytes or percent_of_total is required")
	}
	validateDuration(c, "spec.memory.ramp", s.GetRamp(), 0, MaxDuration, false)
}

func validatePath(c *collector, field, p string) {
	switch {
	case p == "":
		c.addf(field, "is required")
	case len(p) > MaxPathLen:
		c.addf(field, "must be at most %d bytes long, got %d", MaxPathLen, len(p))
	case !filepath.IsAbs(p):
		c.addf(field, "must be an absolute path, got %q", p)
	case strings.ContainsRune(p, 0):
		c.addf(field, "must not contain NUL bytes")
	case filepath.Clean(p) != p:
		c.addf(field, "must be a clean path (no '..', '//' or trailing '/'), got %q", p)
	}
}

func validateDiskFill(c *collector, s *turbulencev1.DiskFillSpec) {
	validatePath(c, "spec.disk_fill.path", s.GetPath())
	switch sz := s.GetSize().(type) {
	case *turbulencev1.DiskFillSpec_Bytes:
		if sz.Bytes == 0 {
			c.addf("spec.disk_fill.bytes", "must be greater than 0")
		}
	case *turbulencev1.DiskFillSpec_PercentOfFilesystem:
		if sz.PercentOfFilesystem < 1 || sz.PercentOfFilesystem > 100 {
			c.addf("spec.disk_fill.percent_of_filesystem", "must be between 1 and 100, got %d", sz.PercentOfFilesystem)
		}
	case *turbulencev1.DiskFillSpec_LeaveFreeBytes:
		// Any value is meaningful; the agent's minimum-free guard applies.
	default:
		c.addf("spec.disk_fill.size", "one of bytes, percent_of_filesystem or leave_free_bytes is required")
	}
}

func validateDiskIO(c *collector, s *turbulencev1.DiskIOSpec) {
	validatePath(c, "spec.disk_io.path", s.GetPath())
	if s.GetMode() == turbulencev1.DiskIOMode_DISK_IO_MODE_UNSPECIFIED {
		c.addf("spec.disk_io.mode", "one of read, write or mixed is required")
	} else if _, ok := turbulencev1.DiskIOMode_name[int32(s.GetMode())]; !ok {
		c.addf("spec.disk_io.mode", "unknown mode %d", s.GetMode())
	}
	if bs := s.GetBlockSizeBytes(); bs != 0 && (bs < 512 || bs > MaxBlockSize || bs%512 != 0) {
		c.addf("spec.disk_io.block_size_bytes", "must be a multiple of 512 between 512 and %d, got %d", MaxBlockSize, bs)
	}
	if s.GetWorkers() > MaxIOWorkers {
		c.addf("spec.disk_io.workers", "must be at most %d, got %d", MaxIOWorkers, s.GetWorkers())
	}
}

func validatePercent(c *collector, field string, v float64) {
	if math.IsNaN(v) || v < 0 || v > 100 {
		c.addf(field, "must be between 0 and 100, got %v", v)
	}
}

func validateNetwork(c *collector, s *turbulencev1.NetworkSpec) {
	if s.GetInterface() == "" {
		c.addf("spec.network.interface", "is required")
	} else if len(s.GetInterface()) > MaxInterfaceLen || strings.ContainsAny(s.GetInterface(), "/ \x00") {
		c.addf("spec.network.interface", "must be a valid interface name of at most %d bytes, got %q", MaxInterfaceLen, s.GetInterface())
	}
	validateDirection(c, "spec.network.direction", s.GetDirection())
	if s.GetNetem() == nil && s.GetBandwidth() == nil {
		c.addf("spec.network", "one of netem or bandwidth is required")
	}
	if n := s.GetNetem(); n != nil {
		validateDuration(c, "spec.network.netem.delay", n.GetDelay(), 0, MaxNetemDelay, false)
		validateDuration(c, "spec.network.netem.jitter", n.GetJitter(), 0, MaxNetemDelay, false)
		validatePercent(c, "spec.network.netem.delay_correlation_percent", n.GetDelayCorrelationPercent())
		validatePercent(c, "spec.network.netem.loss_percent", n.GetLossPercent())
		validatePercent(c, "spec.network.netem.loss_correlation_percent", n.GetLossCorrelationPercent())
		validatePercent(c, "spec.network.netem.duplicate_percent", n.GetDuplicatePercent())
		validatePercent(c, "spec.network.netem.corrupt_percent", n.GetCorruptPercent())
		validatePercent(c, "spec.network.netem.reorder_percent", n.GetReorderPercent())
		if n.GetReorderPercent() > 0 && n.GetDelay().AsDuration() == 0 {
			c.addf("spec.network.netem.reorder_percent", "needs a delay: netem reorders by sending some packets without it")
		}
	}
	if b := s.GetBandwidth(); b != nil && b.GetRateBytesPerSecond() == 0 {
		c.addf("spec.network.bandwidth.rate_bytes_per_second", "must be greater than 0")
	}
	validateTarget(c, "spec.network.target", s.GetTarget())
}

func validatePartition(c *collector, s *turbulencev1.PartitionSpec) {
	validateDirection(c, "spec.partition.direction", s.GetDirection())
	validateTarget(c, "spec.partition.target", s.GetTarget())
}

func validateDirection(c *collector, field string, d turbulencev1.Direction) {
	if _, ok := turbulencev1.Direction_name[int32(d)]; !ok {
		c.addf(field, "unknown direction %d", d)
	}
}

func validateTarget(c *collector, field string, t *turbulencev1.TrafficTarget) {
	if t == nil {
		return
	}
	if len(t.GetCidrs()) > MaxCIDRs {
		c.addf(field+".cidrs", "may list at most %d CIDRs, got %d", MaxCIDRs, len(t.GetCidrs()))
	}
	for _, s := range t.GetCidrs() {
		if _, err := netip.ParsePrefix(s); err != nil {
			c.addf(field+".cidrs", "%q is not a CIDR (like 198.18.0.0/24 or 2001:db8::/64)", s)
		}
	}
	if len(t.GetPorts()) > MaxPorts {
		c.addf(field+".ports", "may list at most %d ports, got %d", MaxPorts, len(t.GetPorts()))
	}
	for _, p := range t.GetPorts() {
		if p == 0 || p > 65535 {
			c.addf(field+".ports", "port %d is out of range 1..65535", p)
		}
	}
	if _, ok := turbulencev1.Protocol_name[int32(t.GetProtocol())]; !ok {
		c.addf(field+".protocol", "unknown protocol %d", t.GetProtocol())
	}
}
