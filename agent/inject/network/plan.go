package network

import (
	"fmt"
	"net/netip"
	"slices"

	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// MaxFilters bounds the u32 filters one fault may add: every CIDR × port ×
// direction-of-port × protocol combination is one filter.
const MaxFilters = 1024

// passRateBytes is the rate of the impaired htb class: far above any NIC,
// so that htb itself shapes nothing and only the leaf qdisc impairs.
const passRateBytes = 100e9 / 8

// IP protocol numbers for targeting.
const (
	ipProtoICMP   = 1
	ipProtoTCP    = 6
	ipProtoUDP    = 17
	ipProtoICMPv6 = 58
)

// Exclusion is traffic a fault must not touch. A zero Prefix means any
// address; Port 0 means any port.
type Exclusion struct {
	// Why names the exclusion in the fault's status ("controller …").
	Why    string
	Prefix netip.Prefix
	// Port is matched as destination, and also as source when BothPorts.
	Port      uint16
	BothPorts bool
}

// Desired is the state a network fault puts on an interface, in the order
// it is created.
type Desired struct {
	Qdiscs  []Qdisc
	Classes []Class
	Filters []Filter
}

// Lines renders d as canonical lines, in creation order.
func (d Desired) Lines() []string {
	var out []string
	for _, q := range d.Qdiscs {
		out = append(out, q.String())
	}
	for _, c := range d.Classes {
		out = append(out, c.String())
	}
	for _, f := range d.Filters {
		out = append(out, f.String())
	}
	return out
}

// Plan turns a validated spec into the qdisc tree and filters for link's
// egress, with exclusions steered around the impairment. It is pure: no
// kernel.
func Plan(link string, spec *turbulencev1.NetworkSpec, excl []Exclusion) (Desired, error) {
	d := impairTree(link, spec)
	for _, e := range excl {
		d.Filters = append(d.Filters, exclusionFilters(link, e, false)...)
	}
	targets, err := targetFilters(link, spec.GetTarget(), false)
	if err != nil {
		return Desired{}, err
	}
	d.Filters = append(d.Filters, targets...)
	if len(d.Filters) > MaxFilters {
		return Desired{}, fmt.Errorf("spec.network.target: needs %d u32 filters, over the limit of %d: list fewer CIDRs or ports", len(d.Filters), MaxFilters)
	}
	return d, nil
}

// IngressPlan is what an ingress fault puts on the host: the ifb device,
// the impairment tree on the ifb's egress (targets matched by source, as
// packets arrive from the peer), and on link an ingress qdisc whose
// filters pass the exclusions untouched and redirect every other IPv4 and
// IPv6 packet to the ifb.
type IngressPlan struct {
	IFB string
	// Alias is written on the ifb as its owner mark (ifbAlias).
	Alias string
	Tree  Desired
	// Qdisc is the ingress qdisc on link; Filters go on it, in order.
	Qdisc   Qdisc
	Filters []Filter
}

// PlanIngress is Plan for the ingress side, through the ifb device ifb.
// Pure: no kernel.
func PlanIngress(link, ifb string, spec *turbulencev1.NetworkSpec, excl []Exclusion) (IngressPlan, error) {
	p := IngressPlan{IFB: ifb, Tree: impairTree(ifb, spec),
		Qdisc: Qdisc{Link: link, Kind: "ingress", Handle: IngressHandle, Parent: HandleIngress}}
	for _, e := range excl {
		p.Filters = append(p.Filters, exclusionFilters(link, e, true)...)
	}
	for _, f := range []family{v4, v6} {
		p.Filters = append(p.Filters, Filter{Link: link, Parent: IngressHandle, Priority: f.prioRedirect, Protocol: f.eth,
			Keys: []U32Key{{}}, RedirectTo: ifb, Why: "redirect to " + ifb})
	}
	targets, err := targetFilters(ifb, spec.GetTarget(), true)
	if err != nil {
		return IngressPlan{}, err
	}
	p.Tree.Filters = targets
	if n := len(p.Filters) + len(targets); n > MaxFilters {
		return IngressPlan{}, fmt.Errorf("spec.network.target: needs %d u32 filters, over the limit of %d: list fewer CIDRs or ports", n, MaxFilters)
	}
	return p, nil
}

// impairTree is the htb root, its impaired class and the impairment on link.
func impairTree(link string, spec *turbulencev1.NetworkSpec) Desired {
	var d Desired
	d.Qdiscs = append(d.Qdiscs, Qdisc{Link: link, Kind: "htb", Handle: RootHandle, Parent: HandleRoot})
	d.Classes = append(d.Classes, Class{Link: link, Handle: ImpairedClass, Parent: RootHandle, RateBytes: passRateBytes})
	parent := uint32(ImpairedClass)
	if n := spec.GetNetem(); n != nil {
		d.Qdiscs = append(d.Qdiscs, Qdisc{Link: link, Kind: "netem", Handle: NetemHandle, Parent: parent, Netem: netemOf(n)})
		parent = NetemHandle | 1 // netem's single child sits in its class 1
	}
	if b := spec.GetBandwidth(); b != nil {
		d.Qdiscs = append(d.Qdiscs, Qdisc{Link: link, Kind: "tbf", Handle: TbfHandle, Parent: parent, Tbf: tbfOf(b)})
	}
	return d
}

func netemOf(n *turbulencev1.NetemSpec) *Netem {
	return &Netem{
		Delay:     n.GetDelay().AsDuration(),
		Jitter:    n.GetJitter().AsDuration(),
		DelayCorr: n.GetDelayCorrelationPercent(),
		Loss:      n.GetLossPercent(),
		LossCorr:  n.GetLossCorrelationPercent(),
		Duplicate: n.GetDuplicatePercent(),
		Corrupt:   n.GetCorruptPercent(),
		Reorder:   n.GetReorderPercent(),
		Gap:       n.GetReorderGap(),
		RateBytes: n.GetRateBytesPerSecond(),
		Limit:     10000, // packets: enough for 1 Gbit/s held for 100 ms
	}
}

// tbfOf fills the defaults of a bandwidth limit: a burst of 10 ms of the
// rate (at least two full-size frames, so a packet always fits) and a
// queue of 100 ms (at least two bursts).
func tbfOf(b *turbulencev1.BandwidthSpec) *Tbf {
	rate := b.GetRateBytesPerSecond()
	burst := uint32(min(max(rate/100, 3028), 1<<30))
	if b.GetBurstBytes() > 0 {
		burst = b.GetBurstBytes()
	}
	limit := uint32(min(max(rate/10, 2*uint64(burst)), 1<<30))
	if b.GetLimitBytes() > 0 {
		limit = b.GetLimitBytes()
	}
	return &Tbf{RateBytes: rate, Burst: burst, Limit: limit}
}

// family says where a family's fields are in its header.
type family struct {
	eth                     uint16
	prioExclude, prioTarget uint16
	// prioIngressExclude and prioRedirect are the priorities of its
	// filters on an ingress qdisc.
	prioIngressExclude, prioRedirect uint16
	src, dst, ports                  int32
	// protoKey matches the transport protocol.
	protoKey func(p uint8) U32Key
	// fixedHeader, if set, must also match for ports to be where we look:
	// IPv4 without options (IHL 5).
	fixedHeader *U32Key
	icmp        uint8
}

var (
	v4 = family{eth: ethPIPv4, prioExclude: prioExcludeV4, prioTarget: prioTargetV4,
		prioIngressExclude: prioIngressExcludeV4, prioRedirect: prioIngressRedirectV4, src: 12, dst: 16, ports: 20,
		protoKey:    func(p uint8) U32Key { return U32Key{Off: 8, Mask: 0x00ff0000, Val: uint32(p) << 16} },
		fixedHeader: &U32Key{Off: 0, Mask: 0x0f000000, Val: 0x05000000}, icmp: ipProtoICMP}
	// IPv6 ports are looked for right after the fixed header: packets
	// with extension headers are not matched by port (documented limit).
	v6 = family{eth: ethPIPv6, prioExclude: prioExcludeV6, prioTarget: prioTargetV6,
		prioIngressExclude: prioIngressExcludeV6, prioRedirect: prioIngressRedirectV6, src: 8, dst: 24, ports: 40,
		protoKey: func(p uint8) U32Key { return U32Key{Off: 4, Mask: 0x0000ff00, Val: uint32(p) << 8} }, icmp: ipProtoICMPv6}
)

func familyOf(p netip.Prefix) family {
	if p.Addr().Is4() {
		return v4
	}
	return v6
}

// portKey matches a destination (or source) port. Its protocol must be
// TCP or UDP, which the caller adds.
func (f family) portKey(port uint16, source bool) []U32Key {
	k := U32Key{Off: f.ports, Mask: 0x0000ffff, Val: uint32(port)}
	if source {
		k = U32Key{Off: f.ports, Mask: 0xffff0000, Val: uint32(port) << 16}
	}
	if f.fixedHeader != nil {
		return []U32Key{*f.fixedHeader, k}
	}
	return []U32Key{k}
}

func newFilter(link string, f family, prio uint16, flow uint32, why string, keys []U32Key) Filter {
	if len(keys) == 0 {
		keys = []U32Key{{}} // match every packet of the family
	}
	return Filter{Link: link, Parent: RootHandle, Priority: prio, Protocol: f.eth, FlowID: flow, Keys: keys, Why: why}
}

// exclusionFilters steers e's traffic around the impairment. On egress
// (ingress false) it goes to the root's own handle, which htb sends
// through its direct queue, untouched; e's prefix is the destination and
// its port the destination port (and the source one with BothPorts). On
// ingress the filters sit on link's ingress qdisc and pass e's traffic
// (never redirected to the ifb); the prefix is the source, and so is the
// port (a DNS answer comes from port 53), the destination one too with
// BothPorts.
func exclusionFilters(link string, e Exclusion, ingress bool) []Filter {
	fams := []family{v4, v6}
	if e.Prefix.IsValid() {
		fams = []family{familyOf(e.Prefix)}
	}
	filter := func(f family, keys []U32Key) Filter {
		if ingress {
			x := newFilter(link, f, f.prioIngressExclude, 0, e.Why, keys)
			x.Parent, x.Pass = IngressHandle, true
			return x
		}
		return newFilter(link, f, f.prioExclude, RootHandle, e.Why, keys)
	}
	var out []Filter
	for _, f := range fams {
		var addr []U32Key
		if e.Prefix.IsValid() {
			off := f.dst
			if ingress {
				off = f.src
			}
			addr = prefixKeys(e.Prefix, off)
		}
		if e.Port == 0 {
			out = append(out, filter(f, addr))
			continue
		}
		for _, proto := range []uint8{ipProtoTCP, ipProtoUDP} {
			keys := append(slices.Clone(addr), f.protoKey(proto))
			out = append(out, filter(f, append(keys, f.portKey(e.Port, ingress)...)))
			if e.BothPorts {
				out = append(out, filter(f, append(slices.Clone(keys), f.portKey(e.Port, !ingress)...)))
			}
		}
	}
	return out
}

// targetFilters steers the target's traffic (egress: CIDRs are
// destinations, ingress: sources — the peer's end either way; a port is
// the remote end's or ours, so both are matched) to the impaired class. An
// empty target impairs everything.
func targetFilters(link string, t *turbulencev1.TrafficTarget, ingress bool) ([]Filter, error) {
	var prefixes []netip.Prefix
	for _, s := range t.GetCidrs() {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("spec.network.target.cidrs: %q is not a CIDR", s)
		}
		prefixes = append(prefixes, p)
	}
	type sel struct {
		f      family
		prefix *netip.Prefix
	}
	var sels []sel
	if len(prefixes) == 0 {
		sels = []sel{{f: v4}, {f: v6}}
	}
	for i := range prefixes {
		sels = append(sels, sel{f: familyOf(prefixes[i]), prefix: &prefixes[i]})
	}
	var protos []uint8
	switch t.GetProtocol() {
	case turbulencev1.Protocol_PROTOCOL_TCP:
		protos = []uint8{ipProtoTCP}
	case turbulencev1.Protocol_PROTOCOL_UDP:
		protos = []uint8{ipProtoUDP}
	case turbulencev1.Protocol_PROTOCOL_ICMP:
		if len(t.GetPorts()) > 0 {
			return nil, fmt.Errorf("spec.network.target.ports: ICMP has no ports")
		}
		protos = []uint8{0} // resolved per family below
	default:
		protos = []uint8{255} // any protocol
		if len(t.GetPorts()) > 0 {
			protos = []uint8{ipProtoTCP, ipProtoUDP}
		}
	}
	var out []Filter
	for _, s := range sels {
		var base []U32Key
		if s.prefix != nil {
			off := s.f.dst
			if ingress {
				off = s.f.src
			}
			base = prefixKeys(*s.prefix, off)
		}
		for _, proto := range protos {
			keys := slices.Clone(base)
			switch proto {
			case 255:
			case 0:
				keys = append(keys, s.f.protoKey(s.f.icmp))
			default:
				keys = append(keys, s.f.protoKey(proto))
			}
			if len(t.GetPorts()) == 0 {
				out = append(out, newFilter(link, s.f, s.f.prioTarget, ImpairedClass, "target", keys))
				continue
			}
			for _, port := range t.GetPorts() {
				for _, source := range []bool{false, true} {
					k := append(slices.Clone(keys), s.f.portKey(uint16(port), source)...)
					out = append(out, newFilter(link, s.f, s.f.prioTarget, ImpairedClass, "target", k))
				}
			}
			if len(out) > MaxFilters {
				return nil, fmt.Errorf("spec.network.target: over %d u32 filters: list fewer CIDRs or ports", MaxFilters)
			}
		}
	}
	return out, nil
}
