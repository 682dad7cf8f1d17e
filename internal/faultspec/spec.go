package faultspec

import (
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Kind returns the kind name of a spec, or "" when no kind is set.
func Kind(spec *turbulencev1.FaultSpec) string {
	switch spec.GetKind().(type) {
	case *turbulencev1.FaultSpec_Cpu:
		return KindCPU
	case *turbulencev1.FaultSpec_Memory:
		return KindMemory
	case *turbulencev1.FaultSpec_DiskFill:
		return KindDiskFill
	case *turbulencev1.FaultSpec_DiskIo:
		return KindDiskIO
	case *turbulencev1.FaultSpec_Network:
		return KindNetwork
	case *turbulencev1.FaultSpec_Partition:
		return KindPartition
	default:
		return ""
	}
}

// WithDefaultDuration returns a copy of spec whose duration is def when
// the spec has none (C10, L12: there is no open-ended fault). The input is
// not modified.
func WithDefaultDuration(spec *turbulencev1.FaultSpec, def time.Duration) *turbulencev1.FaultSpec {
	out := proto.Clone(spec).(*turbulencev1.FaultSpec)
	if out.GetDuration() == nil {
		out.Duration = durationpb.New(def)
	}
	return out
}
