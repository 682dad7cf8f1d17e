package controlapi

import (
	"errors"
	"strings"
	"testing"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

func TestRequireFeatures(t *testing.T) {
	t.Parallel()
	ciKernel := []string{"sch_tbf", "sch_htb", "cls_u32", "sch_ingress", "act_mirred", "ifb", "nftables"}
	netem := &turbulencev1.FaultSpec{Kind: &turbulencev1.FaultSpec_Network{Network: &turbulencev1.NetworkSpec{Interface: "eth0", Netem: &turbulencev1.NetemSpec{}}}}
	tbf := &turbulencev1.FaultSpec{Kind: &turbulencev1.FaultSpec_Network{Network: &turbulencev1.NetworkSpec{Interface: "eth0", Bandwidth: &turbulencev1.BandwidthSpec{RateBytesPerSecond: 1}}}}
	ingressTbf := &turbulencev1.FaultSpec{Kind: &turbulencev1.FaultSpec_Network{Network: &turbulencev1.NetworkSpec{Interface: "eth0",
		Direction: turbulencev1.Direction_DIRECTION_INGRESS, Bandwidth: &turbulencev1.BandwidthSpec{RateBytesPerSecond: 1}}}}
	part := &turbulencev1.FaultSpec{Kind: &turbulencev1.FaultSpec_Partition{Partition: &turbulencev1.PartitionSpec{}}}
	for _, tc := range []struct {
		name     string
		features []string
		spec     *turbulencev1.FaultSpec
		missing  string // "" for accepted
	}{
		{"netem on the CI kernel", ciKernel, netem, "sch_netem is not available on host web-1 (agent a1): load the module"},
		{"tbf on the CI kernel", ciKernel, tbf, ""},
		{"partition without nftables", []string{"sch_htb"}, part, "nftables is not available"},
		{"targeting without a classful root", []string{"cls_u32", "sch_tbf"}, tbf, "sch_prio or sch_htb is not available"},
		{"partition", ciKernel, part, ""},
		{"ingress on the CI kernel", ciKernel, ingressTbf, ""},
		{"ingress without act_mirred", []string{"sch_tbf", "sch_htb", "cls_u32", "sch_ingress", "ifb"}, ingressTbf, "act_mirred is not available"},
		{"ingress without an ifb", []string{"sch_tbf", "sch_htb", "cls_u32", "sch_ingress", "act_mirred"}, ingressTbf, "ifb is not available"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			agent := &turbulencev1.Agent{Id: "a1", Facts: &turbulencev1.HostFacts{Hostname: "web-1"}, Capabilities: &turbulencev1.Capabilities{KernelFeatures: tc.features}}
			err := requireFeatures(agent, tc.spec)
			if tc.missing == "" {
				if err != nil {
					t.Errorf("requireFeatures = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrUnsupportedKind) || !strings.Contains(err.Error(), tc.missing) {
				t.Errorf("requireFeatures = %v, want ErrUnsupportedKind saying %q", err, tc.missing)
			}
		})
	}
}
