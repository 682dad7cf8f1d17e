package cli

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// goldenNetwork is an active targeted delay with the default exclusions.
func goldenNetwork() *turbulencev1.Fault {
	return &turbulencev1.Fault{
		Id: "f-0009", AgentId: "web-1",
		Spec: &turbulencev1.FaultSpec{Duration: durationpb.New(5 * time.Minute),
			Kind: &turbulencev1.FaultSpec_Network{Network: &turbulencev1.NetworkSpec{Interface: "eth0",
				Netem:  &turbulencev1.NetemSpec{Delay: durationpb.New(100 * time.Millisecond), LossPercent: 1},
				Target: &turbulencev1.TrafficTarget{Cidrs: []string{"10.0.2.0/24"}}}}},
		State: turbulencev1.FaultState_FAULT_STATE_ACTIVE, CreatedAt: ts(-time.Minute), Deadline: ts(4 * time.Minute), CreatedBy: "admin/alice",
		Status: &turbulencev1.FaultStatus{FaultId: "f-0009", State: turbulencev1.FaultState_FAULT_STATE_ACTIVE, Deadline: ts(4 * time.Minute), AppliedAt: ts(-59 * time.Second),
			Exclusions: []string{"controller 10.0.0.5:7443", "ssh port 22", "dns 10.0.0.53"},
			Network:    &turbulencev1.NetworkStats{Packets: 12000, Bytes: 9_000_000, Drops: 118}},
	}
}

// TestGoldenNetwork renders `fault show` of a network fault: the
// exclusions and what the kernel counted. Regenerate with -update.
func TestGoldenNetwork(t *testing.T) {
	t.Parallel()
	checkGoldens(t, []string{"table", "json"}, []goldenCase{
		{"fault_show_network", func(a *app) error { return a.printFault(goldenNetwork()) }},
	})
}

func TestApplyNetwork_SendsSpec(t *testing.T) {
	t.Parallel()
	h := startFake(t)
	runCLI(t, h.environ(), "fault", "apply", "network", "--agent", "a1", "--interface", "eth0", "--delay", "100ms", "--loss", "1",
		"--cidr", "10.0.2.0/24", "--cidr", "2001:db8::/64", "--port", "443", "--protocol", "tcp", "--remove-exclusion", "dns").check(t, ExitOK)
	runCLI(t, h.environ(), "fault", "apply", "network", "--agent", "a1", "--interface", "eth0", "--bandwidth", "1MiB").check(t, ExitOK)
	runCLI(t, h.environ(), "fault", "apply", "partition", "--agent", "a1", "--cidr", "10.0.3.0/24", "--direction", "out", "--include-controllers").check(t, ExitOK)
	want := []*turbulencev1.ApplyFaultRequest{
		{RequestId: "req-fixed", AgentId: "a1", Spec: &turbulencev1.FaultSpec{Kind: &turbulencev1.FaultSpec_Network{Network: &turbulencev1.NetworkSpec{
			Interface: "eth0", Direction: turbulencev1.Direction_DIRECTION_EGRESS,
			Netem:  &turbulencev1.NetemSpec{Delay: durationpb.New(100 * time.Millisecond), LossPercent: 1},
			Target: &turbulencev1.TrafficTarget{Cidrs: []string{"10.0.2.0/24", "2001:db8::/64"}, Ports: []uint32{443}, Protocol: turbulencev1.Protocol_PROTOCOL_TCP, RemoveDefaultExclusions: []string{"dns"}}}}}},
		{RequestId: "req-fixed", AgentId: "a1", Spec: &turbulencev1.FaultSpec{Kind: &turbulencev1.FaultSpec_Network{Network: &turbulencev1.NetworkSpec{
			Interface: "eth0", Direction: turbulencev1.Direction_DIRECTION_EGRESS,
			Bandwidth: &turbulencev1.BandwidthSpec{RateBytesPerSecond: 1 << 20}, Target: &turbulencev1.TrafficTarget{}}}}},
		{RequestId: "req-fixed", AgentId: "a1", Spec: &turbulencev1.FaultSpec{Kind: &turbulencev1.FaultSpec_Partition{Partition: &turbulencev1.PartitionSpec{
			Direction: turbulencev1.Direction_DIRECTION_EGRESS, Target: &turbulencev1.TrafficTarget{Cidrs: []string{"10.0.3.0/24"}, IncludeControllers: true}}}}},
	}
	if diff := cmp.Diff(want, h.fake.requests(), protocmp.Transform()); diff != "" {
		t.Errorf("ApplyFault requests (-want +got):\n%s", diff)
	}
}

func TestApplyNetwork_UsageErrors(t *testing.T) {
	t.Parallel()
	h := startFake(t)
	usage := map[string]bool{"no interface": true, "no impairment": true}
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"no interface", []string{"network", "--delay", "1ms"}, "--interface is required"},
		{"no impairment", []string{"network", "--interface", "eth0"}, "give at least one impairment"},
		{"loss over 100", []string{"network", "--interface", "eth0", "--loss", "101"}, "--loss must be between 0 and 100, got 101"},
		{"bad cidr", []string{"network", "--interface", "eth0", "--loss", "1", "--cidr", "10.0.0.300/24"}, `--cidr: "10.0.0.300/24" is not a CIDR`},
		{"bad exclusion", []string{"partition", "--remove-exclusion", "controllers"}, `--remove-exclusion: "controllers" is not one of ssh, dns`},
		{"bad direction", []string{"partition", "--direction", "sideways"}, `--direction: "sideways" is not in, out or both`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, h.environ(), append([]string{"fault", "apply", tt.args[0], "--agent", "a1"}, tt.args[1:]...)...)
			code := ExitInvalid // a value turbctl can tell is wrong
			if usage[tt.name] {
				code = ExitUsage
			}
			r.check(t, code, tt.want)
		})
	}
}
