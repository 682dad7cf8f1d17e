package partition

import (
	"fmt"
	"net/netip"
	"regexp"

	"github.com/turbulence-sre/turbulence/agent/inject"
	"github.com/turbulence-sre/turbulence/agent/inject/network"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// TablePrefix starts the name of every nftables table the agent owns.
const TablePrefix = "turbulence-"

// MaxRules bounds the rules one partition may add.
const MaxRules = 2048

// Hooks a rule sits in.
const (
	HookInput  = "input"
	HookOutput = "output"
)

// IP protocol numbers.
const (
	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
)

// Rule is one nftables rule in Turbulence's own terms.
type Rule struct {
	Hook string
	// Remote is the far end's address prefix (zero: any, in both families
	// when IPv6 is false… see Family).
	Remote netip.Prefix
	// Family is 4 or 6, or 0 for both (no address given).
	Family int
	// Proto is the transport protocol (0: any).
	Proto uint8
	// RemotePort and LocalPort are matched when non-zero.
	RemotePort, LocalPort uint16
	Drop                  bool
	Why                   string
}

// String renders r canonically, like nft.
func (r Rule) String() string {
	s := r.Hook
	if r.Family != 0 {
		s += fmt.Sprintf(" ip%d", r.Family)
	}
	if r.Remote.IsValid() {
		s += " remote " + r.Remote.String()
	}
	if r.Proto != 0 {
		s += fmt.Sprintf(" l4proto %d", r.Proto)
	}
	if r.RemotePort != 0 {
		s += fmt.Sprintf(" remote-port %d", r.RemotePort)
	}
	if r.LocalPort != 0 {
		s += fmt.Sprintf(" local-port %d", r.LocalPort)
	}
	if r.Drop {
		return s + " counter drop"
	}
	return s + " accept # " + r.Why
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

// TableName is owner's table for fault id: the prefix, the owner's tag
// (its mark: a sweep removes only tables with its own tag), then the id.
func TableName(owner inject.Owner, id string) string {
	n := ownerPrefix(owner) + unsafeName.ReplaceAllString(id, "_")
	return n[:min(len(n), 200)]
}

// ownerPrefix starts the name of every table of owner's.
func ownerPrefix(owner inject.Owner) string { return TablePrefix + owner.Tag() + "-" }

// Plan lists the rules of a partition: exclusions first (accept), then the
// target (drop). It is pure.
func Plan(spec *turbulencev1.PartitionSpec, excl []network.Exclusion) ([]Rule, error) {
	var hooks []string
	switch spec.GetDirection() {
	case turbulencev1.Direction_DIRECTION_INGRESS:
		hooks = []string{HookInput}
	case turbulencev1.Direction_DIRECTION_EGRESS:
		hooks = []string{HookOutput}
	default: // unspecified means both: a partition cuts both ways
		hooks = []string{HookInput, HookOutput}
	}
	var rules []Rule
	for _, hook := range hooks {
		for _, e := range excl {
			rules = append(rules, exclusionRules(hook, e)...)
		}
	}
	for _, hook := range hooks {
		t, err := targetRules(hook, spec.GetTarget())
		if err != nil {
			return nil, err
		}
		rules = append(rules, t...)
	}
	if len(rules) > MaxRules {
		return nil, fmt.Errorf("spec.partition.target: needs %d nftables rules, over the limit of %d: list fewer CIDRs or ports", len(rules), MaxRules)
	}
	return rules, nil
}

func familyOf(p netip.Prefix) int {
	if !p.IsValid() {
		return 0
	}
	if p.Addr().Is4() {
		return 4
	}
	return 6
}

func exclusionRules(hook string, e network.Exclusion) []Rule {
	base := Rule{Hook: hook, Remote: e.Prefix, Family: familyOf(e.Prefix), Why: e.Why}
	if e.Port == 0 {
		return []Rule{base}
	}
	var out []Rule
	for _, proto := range []uint8{protoTCP, protoUDP} {
		r := base
		r.Proto, r.RemotePort = proto, e.Port
		out = append(out, r)
		if e.BothPorts {
			r.RemotePort, r.LocalPort = 0, e.Port
			out = append(out, r)
		}
	}
	return out
}

func targetRules(hook string, t *turbulencev1.TrafficTarget) ([]Rule, error) {
	var remotes []netip.Prefix
	for _, s := range t.GetCidrs() {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("spec.partition.target.cidrs: %q is not a CIDR", s)
		}
		remotes = append(remotes, p.Masked())
	}
	if len(remotes) == 0 {
		remotes = []netip.Prefix{{}}
	}
	var protos []uint8
	switch t.GetProtocol() {
	case turbulencev1.Protocol_PROTOCOL_TCP:
		protos = []uint8{protoTCP}
	case turbulencev1.Protocol_PROTOCOL_UDP:
		protos = []uint8{protoUDP}
	case turbulencev1.Protocol_PROTOCOL_ICMP:
		if len(t.GetPorts()) > 0 {
			return nil, fmt.Errorf("spec.partition.target.ports: ICMP has no ports")
		}
		protos = []uint8{protoICMP} // ICMPv6 for IPv6 remotes, below
	default:
		protos = []uint8{0}
		if len(t.GetPorts()) > 0 {
			protos = []uint8{protoTCP, protoUDP}
		}
	}
	var out []Rule
	for _, remote := range remotes {
		for _, proto := range protos {
			r := Rule{Hook: hook, Remote: remote, Family: familyOf(remote), Proto: proto, Drop: true}
			if proto == protoICMP {
				switch r.Family {
				case 6:
					r.Proto = protoICMPv6
				case 0: // both families, each with its own ICMP
					r.Family = 4
					v6 := r
					v6.Family, v6.Proto = 6, protoICMPv6
					out = append(out, r, v6)
					continue
				}
			}
			if len(t.GetPorts()) == 0 {
				out = append(out, r)
				continue
			}
			for _, port := range t.GetPorts() {
				r.RemotePort = uint16(port)
				out = append(out, r)
			}
		}
	}
	return out, nil
}
