package cli

import (
	"strconv"
	"strings"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// specFields lists the kind-specific parameters of a spec as label/value
// pairs, in the order a person reads them. Every kind of the catalogue is
// rendered, since faults may be created through the API by other tools
// before the CLI can apply them.
func specFields(spec *turbulencev1.FaultSpec) [][2]string {
	switch k := spec.GetKind().(type) {
	case *turbulencev1.FaultSpec_Cpu:
		c := k.Cpu
		if c.GetHostUtilizationPercent() > 0 {
			return [][2]string{
				{"Host utilisation", strconv.FormatUint(uint64(c.GetHostUtilizationPercent()), 10) + "% of the whole host"},
				{"Pin CPUs", uintList(c.GetPinCpus())},
			}
		}
		return [][2]string{
			{"Cores", cores(c.GetCores())},
			{"Load", strconv.FormatUint(uint64(c.GetLoadPercent()), 10) + "% per core"},
			{"Pin CPUs", uintList(c.GetPinCpus())},
		}
	case *turbulencev1.FaultSpec_Memory:
		return [][2]string{{"Size", memorySize(k.Memory)}, {"Ramp", duration(k.Memory.GetRamp())}, {"Mlock", yesNo(k.Memory.GetMlock())}}
	case *turbulencev1.FaultSpec_DiskFill:
		return [][2]string{{"Path", k.DiskFill.GetPath()}, {"Size", fillSize(k.DiskFill)}, {"Cap", yesNo(k.DiskFill.GetCap())}}
	case *turbulencev1.FaultSpec_DiskIo:
		d := k.DiskIo
		return [][2]string{
			{"Path", d.GetPath()},
			{"Mode", strings.ToLower(strings.TrimPrefix(d.GetMode().String(), "DISK_IO_MODE_"))},
			{"Bandwidth", rate(d.GetBytesPerSecond())},
			{"IOPS", unbounded(uint64(d.GetIops()))},
			{"Block size", blockSize(d.GetBlockSizeBytes())},
			{"Workers", strconv.FormatUint(uint64(max(d.GetWorkers(), 1)), 10)},
			{"Direct", yesNo(d.GetDirect())},
		}
	case *turbulencev1.FaultSpec_Network:
		n := k.Network
		return [][2]string{
			{"Interface", orNone(n.GetInterface())},
			{"Direction", direction(n.GetDirection())},
			{"Impairment", netem(n)},
			{"Target", target(n.GetTarget())},
		}
	case *turbulencev1.FaultSpec_Partition:
		return [][2]string{{"Direction", direction(k.Partition.GetDirection())}, {"Target", target(k.Partition.GetTarget())}}
	}
	return nil
}

// specSummary is specFields on one line, for tables.
func specSummary(spec *turbulencev1.FaultSpec) string {
	if c := spec.GetCpu(); c != nil {
		var parts []string
		if c.GetHostUtilizationPercent() > 0 {
			parts = append(parts, "host="+strconv.FormatUint(uint64(c.GetHostUtilizationPercent()), 10)+"%")
		} else {
			parts = append(parts, "cores="+cores(c.GetCores()), "load="+strconv.FormatUint(uint64(c.GetLoadPercent()), 10)+"%")
		}
		if len(c.GetPinCpus()) > 0 {
			parts = append(parts, "pin="+uintList(c.GetPinCpus()))
		}
		return strings.Join(parts, " ") + " for " + duration(spec.GetDuration())
	}
	fields := specFields(spec)
	if len(fields) == 0 {
		return none
	}
	parts := make([]string, 0, len(fields)+1)
	for _, kv := range fields {
		if kv[1] != none {
			parts = append(parts, strings.ToLower(kv[0])+"="+kv[1])
		}
	}
	return strings.Join(parts, " ") + " for " + duration(spec.GetDuration())
}

func cores(n uint32) string {
	if n == 0 {
		return "all"
	}
	return strconv.FormatUint(uint64(n), 10)
}

func memorySize(m *turbulencev1.MemorySpec) string {
	switch s := m.GetSize().(type) {
	case *turbulencev1.MemorySpec_Bytes:
		return bytesIEC(s.Bytes)
	case *turbulencev1.MemorySpec_PercentOfTotal:
		return strconv.FormatUint(uint64(s.PercentOfTotal), 10) + "% of total"
	}
	return none
}

func fillSize(d *turbulencev1.DiskFillSpec) string {
	switch s := d.GetSize().(type) {
	case *turbulencev1.DiskFillSpec_Bytes:
		return bytesIEC(s.Bytes)
	case *turbulencev1.DiskFillSpec_PercentOfFilesystem:
		return strconv.FormatUint(uint64(s.PercentOfFilesystem), 10) + "% of filesystem"
	case *turbulencev1.DiskFillSpec_LeaveFreeBytes:
		return "leave " + bytesIEC(s.LeaveFreeBytes) + " free"
	}
	return none
}

func rate(bps uint64) string {
	if bps == 0 {
		return "unbounded"
	}
	return bytesIEC(bps) + "/s"
}

// blockSize renders a disk I/O block size; 0 is the agent's default, 4 KiB.
func blockSize(n uint32) string {
	if n == 0 {
		return bytesIEC(4096)
	}
	return bytesIEC(uint64(n))
}

func unbounded(n uint64) string {
	if n == 0 {
		return "unbounded"
	}
	return strconv.FormatUint(n, 10)
}

func direction(d turbulencev1.Direction) string {
	if d == turbulencev1.Direction_DIRECTION_UNSPECIFIED {
		return none
	}
	return strings.ToLower(strings.TrimPrefix(d.String(), "DIRECTION_"))
}

func netem(n *turbulencev1.NetworkSpec) string {
	var parts []string
	ne := n.GetNetem()
	if ne.GetDelay() != nil {
		parts = append(parts, "delay "+duration(ne.GetDelay()))
	}
	if ne.GetJitter() != nil {
		parts = append(parts, "jitter "+duration(ne.GetJitter()))
	}
	for _, p := range []struct {
		name string
		v    float64
	}{{"loss", ne.GetLossPercent()}, {"duplicate", ne.GetDuplicatePercent()}, {"corrupt", ne.GetCorruptPercent()}, {"reorder", ne.GetReorderPercent()}} {
		if p.v != 0 {
			parts = append(parts, p.name+" "+percent(p.v))
		}
	}
	if r := ne.GetRateBytesPerSecond(); r != 0 {
		parts = append(parts, "rate "+rate(r))
	}
	if r := n.GetBandwidth().GetRateBytesPerSecond(); r != 0 {
		parts = append(parts, "bandwidth "+rate(r))
	}
	if len(parts) == 0 {
		return none
	}
	return strings.Join(parts, ", ")
}

func target(t *turbulencev1.TrafficTarget) string {
	var parts []string
	if len(t.GetCidrs()) > 0 {
		parts = append(parts, strings.Join(t.GetCidrs(), ","))
	}
	if len(t.GetPorts()) > 0 {
		parts = append(parts, "ports "+uintList(t.GetPorts()))
	}
	if t.GetProtocol() != turbulencev1.Protocol_PROTOCOL_UNSPECIFIED {
		parts = append(parts, strings.ToLower(strings.TrimPrefix(t.GetProtocol().String(), "PROTOCOL_")))
	}
	if len(parts) == 0 {
		return "all traffic"
	}
	return strings.Join(parts, " ")
}
