package faultspec

import (
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

func cpuSpec(cores, load uint32, d time.Duration) *turbulencev1.FaultSpec {
	return &turbulencev1.FaultSpec{
		Duration: durationpb.New(d),
		Kind:     &turbulencev1.FaultSpec_Cpu{Cpu: &turbulencev1.CPUSpec{Cores: cores, LoadPercent: load}},
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		spec *turbulencev1.FaultSpec
		// wantFields lists the fields the error must name; empty means valid.
		wantFields []string
		// wantText is a fragment the message must hold (the limit).
		wantText string
	}{
		{name: "valid cpu", spec: cpuSpec(1, 50, 10*time.Second)},
		{name: "valid cpu all cores", spec: cpuSpec(0, 100, time.Minute)},
		{name: "load 150", spec: cpuSpec(1, 150, 10*time.Second), wantFields: []string{"spec.cpu.load_percent"}, wantText: "between 1 and 100, got 150"},
		{name: "load 0", spec: cpuSpec(1, 0, 10*time.Second), wantFields: []string{"spec.cpu.load_percent"}},
		{name: "duration 0", spec: cpuSpec(1, 50, 0), wantFields: []string{"spec.duration"}, wantText: "between 1s and 24h0m0s, got 0s"},
		{name: "duration too long", spec: cpuSpec(1, 50, 25*time.Hour), wantFields: []string{"spec.duration"}},
		{name: "negative duration", spec: cpuSpec(1, 50, -time.Second), wantFields: []string{"spec.duration"}},
		{name: "missing duration", spec: &turbulencev1.FaultSpec{Kind: &turbulencev1.FaultSpec_Cpu{Cpu: &turbulencev1.CPUSpec{LoadPercent: 5}}}, wantFields: []string{"spec.duration"}, wantText: "is required"},
		{name: "two problems", spec: cpuSpec(5000, 0, 0), wantFields: []string{"spec.duration", "spec.cpu.load_percent", "spec.cpu.cores"}},
		{name: "no kind", spec: &turbulencev1.FaultSpec{Duration: durationpb.New(time.Second)}, wantFields: []string{"spec.kind"}},
		{name: "nil spec", spec: nil, wantFields: []string{"spec"}},
		{
			name:       "pin mismatch",
			spec:       &turbulencev1.FaultSpec{Duration: durationpb.New(time.Minute), Kind: &turbulencev1.FaultSpec_Cpu{Cpu: &turbulencev1.CPUSpec{Cores: 2, LoadPercent: 50, PinCpus: []uint32{1}}}},
			wantFields: []string{"spec.cpu.pin_cpus"},
		},
		{
			name:       "pin twice",
			spec:       &turbulencev1.FaultSpec{Duration: durationpb.New(time.Minute), Kind: &turbulencev1.FaultSpec_Cpu{Cpu: &turbulencev1.CPUSpec{LoadPercent: 50, PinCpus: []uint32{1, 1}}}},
			wantFields: []string{"spec.cpu.pin_cpus"}, wantText: "listed twice",
		},
		{
			name:       "host utilisation with load",
			spec:       &turbulencev1.FaultSpec{Duration: durationpb.New(time.Minute), Kind: &turbulencev1.FaultSpec_Cpu{Cpu: &turbulencev1.CPUSpec{LoadPercent: 50, HostUtilizationPercent: 60}}},
			wantFields: []string{"spec.cpu.load_percent"},
		},
		{
			name:       "memory percent over 100",
			spec:       &turbulencev1.FaultSpec{Duration: durationpb.New(time.Minute), Kind: &turbulencev1.FaultSpec_Memory{Memory: &turbulencev1.MemorySpec{Size: &turbulencev1.MemorySpec_PercentOfTotal{PercentOfTotal: 101}}}},
			wantFields: []string{"spec.memory.percent_of_total"},
		},
		{
			name:       "disk fill relative path",
			spec:       &turbulencev1.FaultSpec{Duration: durationpb.New(time.Minute), Kind: &turbulencev1.FaultSpec_DiskFill{DiskFill: &turbulencev1.DiskFillSpec{Path: "var/tmp", Size: &turbulencev1.DiskFillSpec_Bytes{Bytes: 1}}}},
			wantFields: []string{"spec.disk_fill.path"}, wantText: "absolute",
		},
		{
			name:       "disk io without mode",
			spec:       &turbulencev1.FaultSpec{Duration: durationpb.New(time.Minute), Kind: &turbulencev1.FaultSpec_DiskIo{DiskIo: &turbulencev1.DiskIOSpec{Path: "/var/tmp"}}},
			wantFields: []string{"spec.disk_io.mode"},
		},
		{
			name: "network loss over 100 and bad cidr",
			spec: &turbulencev1.FaultSpec{Duration: durationpb.New(time.Minute), Kind: &turbulencev1.FaultSpec_Network{Network: &turbulencev1.NetworkSpec{
				Interface: "eth0",
				Netem:     &turbulencev1.NetemSpec{LossPercent: 120},
				Target:    &turbulencev1.TrafficTarget{Cidrs: []string{"198.18.0.0/33"}, Ports: []uint32{70000}},
			}}},
			wantFields: []string{"spec.network.netem.loss_percent", "spec.network.target.cidrs", "spec.network.target.ports"},
		},
		{
			name: "network valid v6 target",
			spec: &turbulencev1.FaultSpec{Duration: durationpb.New(time.Minute), Kind: &turbulencev1.FaultSpec_Network{Network: &turbulencev1.NetworkSpec{
				Interface: "eth0",
				Netem:     &turbulencev1.NetemSpec{Delay: durationpb.New(100 * time.Millisecond)},
				Target:    &turbulencev1.TrafficTarget{Cidrs: []string{"198.18.0.0/24", "2001:db8::/64"}, Ports: []uint32{443}},
			}}},
		},
		{
			name:       "partition bad direction",
			spec:       &turbulencev1.FaultSpec{Duration: durationpb.New(time.Minute), Kind: &turbulencev1.FaultSpec_Partition{Partition: &turbulencev1.PartitionSpec{Direction: 9}}},
			wantFields: []string{"spec.partition.direction"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var before *turbulencev1.FaultSpec
			if tt.spec != nil {
				before = proto.Clone(tt.spec).(*turbulencev1.FaultSpec)
			}
			err := Validate(tt.spec)
			if tt.spec != nil && !proto.Equal(before, tt.spec) {
				t.Fatalf("Validate modified its input")
			}
			if len(tt.wantFields) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var verr *Error
			if !errors.As(err, &verr) {
				t.Fatalf("Validate() = %v, want *Error", err)
			}
			got := map[string]bool{}
			for _, p := range verr.Problems {
				got[p.Field] = true
			}
			for _, f := range tt.wantFields {
				if !got[f] {
					t.Errorf("Validate() problems %v do not name %s", verr.Problems, f)
				}
			}
			if tt.wantText != "" && !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("Validate() = %q, want it to contain %q", err, tt.wantText)
			}
		})
	}
}

func TestWithDefaultDuration(t *testing.T) {
	t.Parallel()
	in := &turbulencev1.FaultSpec{Kind: &turbulencev1.FaultSpec_Cpu{Cpu: &turbulencev1.CPUSpec{LoadPercent: 5}}}
	out := WithDefaultDuration(in, 5*time.Minute)
	if in.Duration != nil {
		t.Fatal("WithDefaultDuration modified its input")
	}
	if got := out.GetDuration().AsDuration(); got != 5*time.Minute {
		t.Fatalf("duration = %s, want 5m", got)
	}
	// An explicit duration, even an invalid zero, is kept for Validate to refuse.
	zero := cpuSpec(1, 50, 0)
	if got := WithDefaultDuration(zero, time.Minute).GetDuration().AsDuration(); got != 0 {
		t.Fatalf("explicit zero duration replaced by %s", got)
	}
}

func TestKind(t *testing.T) {
	t.Parallel()
	if got := Kind(cpuSpec(1, 1, time.Second)); got != KindCPU {
		t.Fatalf("Kind = %q, want cpu", got)
	}
	if got := Kind(&turbulencev1.FaultSpec{}); got != "" {
		t.Fatalf("Kind(empty) = %q, want empty", got)
	}
}
