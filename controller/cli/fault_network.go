package cli

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/turbulence-sre/turbulence/internal/config"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// Default exclusions a target can remove by name (agent/inject/network).
var defaultExclusions = []string{"ssh", "dns"}

var networkKind = applyKind{
	name:  "network",
	short: "Impair egress traffic on one interface: delay, loss, duplicate, corrupt, reorder, rate, bandwidth",
	long: `Impair the traffic an agent's host sends on --interface, with netem (delay,
jitter, loss, duplicate, corrupt, reorder, rate) and/or a tbf bandwidth limit.

Only matching traffic is hurt: --cidr (destinations), --port (either end's
port) and --protocol narrow it; with none, all traffic is. Always excluded:
the path to the controllers (unless --include-controllers: then the lease
decides when the agent reverts) and the agent's protected CIDRs. Excluded by
default: SSH (port 22 either way) and DNS to the host's resolvers; remove them
with --remove-exclusion ssh,dns. 'turbctl fault show' lists every exclusion
and what the kernel counted (packets, drops).

The agent refuses an interface that already carries a fault, a configured
root qdisc its policy does not allow replacing, and a kernel without the
qdisc (this names the module, e.g. sch_netem). --direction ingress hurts
incoming traffic through an ifb device; both hurts each way.

Example:
  turbctl fault apply network --agent web-1 --interface eth0 --delay 100ms --jitter 10ms --loss 1 --cidr 10.0.2.0/24 --duration 5m`,
	bind: bindNetwork,
}

var partitionKind = applyKind{
	name:  "partition",
	short: "Drop traffic to and from CIDRs/ports with an nftables table",
	long: `Cut an agent's host off from --cidr (and --port, --protocol) with an nftables
table the agent owns; revert deletes the table. --direction in, out or both
(default both). With no --cidr, every address is cut except the exclusions:
the controllers (always, unless --include-controllers), the agent's protected
CIDRs, and by default SSH and DNS to the resolvers (--remove-exclusion ssh,dns).

Example:
  turbctl fault apply partition --agent db-2 --cidr 10.0.3.0/24 --port 5432 --direction out --duration 2m`,
	bind: bindPartition,
}

// targetFlags are the targeting flags shared by network and partition.
type targetFlags struct {
	cidrs, ports, removed []string
	protocol              string
	includeControllers    bool
}

func (t *targetFlags) bind(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringSliceVar(&t.cidrs, "cidr", nil, "target CIDR, IPv4 or IPv6 (repeatable; default: every address)")
	f.StringSliceVar(&t.ports, "port", nil, "target port (repeatable)")
	f.StringVar(&t.protocol, "protocol", "", "tcp, udp or icmp (default: any)")
	f.StringSliceVar(&t.removed, "remove-exclusion", nil, "default exclusion to drop: ssh, dns")
	f.BoolVar(&t.includeControllers, "include-controllers", false, "also hurt the path to the controllers (the lease then reverts the fault)")
}

func (t *targetFlags) build() (*turbulencev1.TrafficTarget, error) {
	tt := &turbulencev1.TrafficTarget{IncludeControllers: t.includeControllers}
	for _, c := range t.cidrs {
		if _, err := netip.ParsePrefix(c); err != nil {
			return nil, invalidf("--cidr: %q is not a CIDR (like 198.18.0.0/24 or 2001:db8::/64)", c)
		}
		tt.Cidrs = append(tt.Cidrs, c)
	}
	for _, p := range t.ports {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return nil, invalidf("--port: %q is not a port in 1..65535", p)
		}
		tt.Ports = append(tt.Ports, uint32(n))
	}
	switch strings.ToLower(t.protocol) {
	case "":
	case "tcp":
		tt.Protocol = turbulencev1.Protocol_PROTOCOL_TCP
	case "udp":
		tt.Protocol = turbulencev1.Protocol_PROTOCOL_UDP
	case "icmp":
		tt.Protocol = turbulencev1.Protocol_PROTOCOL_ICMP
	default:
		return nil, invalidf("--protocol: %q is not tcp, udp or icmp", t.protocol)
	}
	for _, r := range t.removed {
		if !slices.Contains(defaultExclusions, r) {
			return nil, invalidf("--remove-exclusion: %q is not one of %s", r, strings.Join(defaultExclusions, ", "))
		}
		tt.RemoveDefaultExclusions = append(tt.RemoveDefaultExclusions, r)
	}
	return tt, nil
}

func bindNetwork(cmd *cobra.Command) func(*turbulencev1.FaultSpec) error {
	var (
		iface, direction, rate, bandwidth string
		delay, jitter                     time.Duration
		delayCorr, loss, lossCorr         float64
		dup, corrupt, reorder             float64
		gap                               uint32
		t                                 targetFlags
	)
	f := cmd.Flags()
	f.StringVar(&iface, "interface", "", "interface to impair (required)")
	f.StringVar(&direction, "direction", "egress", "egress, ingress (through an ifb device on the agent) or both")
	f.DurationVar(&delay, "delay", 0, "added delay, e.g. 100ms")
	f.DurationVar(&jitter, "jitter", 0, "delay jitter")
	f.Float64Var(&delayCorr, "delay-correlation", 0, "delay correlation, percent")
	f.Float64Var(&loss, "loss", 0, "packet loss, percent 0..100")
	f.Float64Var(&lossCorr, "loss-correlation", 0, "loss correlation, percent")
	f.Float64Var(&dup, "duplicate", 0, "duplicated packets, percent")
	f.Float64Var(&corrupt, "corrupt", 0, "corrupted packets, percent")
	f.Float64Var(&reorder, "reorder", 0, "reordered packets, percent (needs --delay)")
	f.Uint32Var(&gap, "reorder-gap", 0, "reorder every Nth packet")
	f.StringVar(&rate, "rate", "", "netem rate in bytes per second, e.g. 1MiB")
	f.StringVar(&bandwidth, "bandwidth", "", "tbf bandwidth limit in bytes per second, e.g. 1MiB")
	t.bind(cmd)

	return func(spec *turbulencev1.FaultSpec) error {
		if iface == "" {
			return usagef("--interface is required")
		}
		ns := &turbulencev1.NetworkSpec{Interface: iface}
		switch direction {
		case "egress", "out":
			ns.Direction = turbulencev1.Direction_DIRECTION_EGRESS
		case "ingress", "in":
			ns.Direction = turbulencev1.Direction_DIRECTION_INGRESS
		case "both":
			ns.Direction = turbulencev1.Direction_DIRECTION_BOTH
		default:
			return invalidf("--direction: %q is not egress, ingress or both", direction)
		}
		for name, v := range map[string]float64{"delay-correlation": delayCorr, "loss": loss, "loss-correlation": lossCorr, "duplicate": dup, "corrupt": corrupt, "reorder": reorder} {
			if v < 0 || v > 100 {
				return invalidf("--%s must be between 0 and 100, got %v", name, v)
			}
		}
		netemSet := slices.ContainsFunc([]string{"delay", "jitter", "delay-correlation", "loss", "loss-correlation", "duplicate", "corrupt", "reorder", "reorder-gap", "rate"}, f.Changed)
		if netemSet {
			n := &turbulencev1.NetemSpec{DelayCorrelationPercent: delayCorr, LossPercent: loss, LossCorrelationPercent: lossCorr,
				DuplicatePercent: dup, CorruptPercent: corrupt, ReorderPercent: reorder, ReorderGap: gap}
			if delay > 0 {
				n.Delay = durationpb.New(delay)
			}
			if jitter > 0 {
				n.Jitter = durationpb.New(jitter)
			}
			if rate != "" {
				b, err := config.ParseByteSize(rate)
				if err != nil {
					return invalidf("--rate: %v", err)
				}
				n.RateBytesPerSecond = uint64(b)
			}
			ns.Netem = n
		}
		if bandwidth != "" {
			b, err := config.ParseByteSize(bandwidth)
			if err != nil || b == 0 {
				return invalidf("--bandwidth: %q is not a positive size, like 1MiB", bandwidth)
			}
			ns.Bandwidth = &turbulencev1.BandwidthSpec{RateBytesPerSecond: uint64(b)}
		}
		if ns.Netem == nil && ns.Bandwidth == nil {
			return usagef("give at least one impairment: --delay, --loss, …, or --bandwidth")
		}
		tt, err := t.build()
		if err != nil {
			return err
		}
		ns.Target = tt
		spec.Kind = &turbulencev1.FaultSpec_Network{Network: ns}
		return nil
	}
}

func bindPartition(cmd *cobra.Command) func(*turbulencev1.FaultSpec) error {
	var (
		direction string
		t         targetFlags
	)
	cmd.Flags().StringVar(&direction, "direction", "both", "in, out or both")
	t.bind(cmd)
	return func(spec *turbulencev1.FaultSpec) error {
		ps := &turbulencev1.PartitionSpec{}
		switch direction {
		case "both":
			ps.Direction = turbulencev1.Direction_DIRECTION_BOTH
		case "in", "ingress":
			ps.Direction = turbulencev1.Direction_DIRECTION_INGRESS
		case "out", "egress":
			ps.Direction = turbulencev1.Direction_DIRECTION_EGRESS
		default:
			return invalidf("--direction: %q is not in, out or both", direction)
		}
		tt, err := t.build()
		if err != nil {
			return err
		}
		ps.Target = tt
		spec.Kind = &turbulencev1.FaultSpec_Partition{Partition: ps}
		return nil
	}
}

// networkRows prints what a network fault or partition spared and what
// the kernel counted.
func networkRows(tw *tabwriter.Writer, spec *turbulencev1.FaultSpec, st *turbulencev1.FaultStatus) {
	switch spec.GetKind().(type) {
	case *turbulencev1.FaultSpec_Network, *turbulencev1.FaultSpec_Partition:
	default:
		return
	}
	if n := st.GetNetwork(); n != nil {
		row(tw, "  Packets:", fmt.Sprintf("%d (%d bytes)", n.GetPackets(), n.GetBytes()))
		row(tw, "  Dropped:", strconv.FormatUint(n.GetDrops(), 10))
		row(tw, "  Over limit:", strconv.FormatUint(n.GetOverlimits(), 10))
	} else {
		row(tw, "  Packets:", "(not measured yet)")
	}
	if len(st.GetExclusions()) == 0 {
		row(tw, "  Excluded:", "none")
		return
	}
	for i, e := range st.GetExclusions() {
		label := ""
		if i == 0 {
			label = "  Excluded:"
		}
		row(tw, label, e)
	}
}
