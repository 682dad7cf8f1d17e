package hostseries

import (
	"math"

	"google.golang.org/protobuf/types/known/timestamppb"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Proto returns the sample as GetAgentMetrics answers it; a metric the
// agent could not read is absent.
func (s Sample) Proto() *turbulencev1.HostMetricsSample {
	opt := func(v float64) *float64 {
		if math.IsNaN(v) {
			return nil
		}
		return &v
	}
	return &turbulencev1.HostMetricsSample{
		SampledAt:             timestamppb.New(s.Time),
		CpuPercent:            opt(s.CPUPercent),
		MemoryUsedPercent:     opt(s.MemoryUsedPercent),
		MemoryUsedBytes:       opt(s.MemoryUsedBytes),
		Load1:                 opt(s.Load1),
		Load5:                 opt(s.Load5),
		Load15:                opt(s.Load15),
		DiskUsedPercent:       opt(s.DiskUsedPercent),
		DiskIoBytesPerSecond:  opt(s.DiskIOBytesPerSecond),
		NetworkBytesPerSecond: opt(s.NetworkBytesPerSecond),
	}
}
