package network

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// The agent's qdisc handle range (its mark) and the handles it uses.
const (
	HandleMajorMin = 0x7400
	HandleMajorMax = 0x74ff
	// RootHandle is the classful root, ImpairedClass its impaired class.
	RootHandle    = HandleMajorMin << 16
	ImpairedClass = RootHandle | 1
	// NetemHandle and TbfHandle are the impairment qdiscs under it.
	NetemHandle = (HandleMajorMin + 1) << 16
	TbfHandle   = (HandleMajorMin + 2) << 16
	// HandleRoot is the kernel's TC_H_ROOT: the parent of a root qdisc.
	HandleRoot = 0xffffffff
	// HandleIngress is the kernel's TC_H_INGRESS, the parent of an ingress
	// (or clsact) qdisc, and IngressHandle the handle the kernel gives
	// every ingress qdisc (ffff:) whatever was asked: the agent's mark on
	// ingress is therefore the priority of its filters (IsAgentPrio).
	HandleIngress = 0xfffffff1
	IngressHandle = 0xffff0000
)

// IFBPrefix starts the name of every ifb device the agent creates (its
// mark on links): "tifb" and 8 hex digits of the fault's id.
const IFBPrefix = "tifb"

// Filter priorities on an ingress qdisc, in the agent's mark range
// [IngressPrioMin, IngressPrioMax]: exclusions (passed, never redirected)
// are looked at before the redirects to the ifb.
const (
	IngressPrioMin        = 0x7400
	IngressPrioMax        = 0x74ff
	prioIngressExcludeV4  = 0x7401
	prioIngressExcludeV6  = 0x7402
	prioIngressRedirectV4 = 0x7410
	prioIngressRedirectV6 = 0x7411
)

// IsAgentPrio reports whether an ingress filter priority carries the
// agent's mark.
func IsAgentPrio(p uint16) bool { return p >= IngressPrioMin && p <= IngressPrioMax }

// Ethernet protocol numbers of u32 filters.
const (
	ethPIPv4 = 0x0800
	ethPIPv6 = 0x86dd
)

// Filter priorities: exclusions are looked at before targets.
const (
	prioExcludeV4 = 1
	prioExcludeV6 = 2
	prioTargetV4  = 10
	prioTargetV6  = 11
)

// IsAgentHandle reports whether h (a full major:minor handle) carries the
// agent's mark.
func IsAgentHandle(h uint32) bool {
	major := h >> 16
	return major >= HandleMajorMin && major <= HandleMajorMax
}

// ErrNoInterface means the interface named by a fault does not exist.
var ErrNoInterface = errors.New("no such interface")

// Qdisc is a queueing discipline in Turbulence's own terms, so that the
// injector, its fake and its tests compile on every OS (docs/style.md, OS-facing code);
// only ops_linux.go converts to netlink.
type Qdisc struct {
	Link   string `json:"link"`
	Kind   string `json:"kind"`
	Handle uint32 `json:"handle"`
	Parent uint32 `json:"parent"`
	// Netem is set for kind netem, Tbf for kind tbf, FqCodel for fq_codel.
	Netem   *Netem   `json:"netem,omitempty"`
	Tbf     *Tbf     `json:"tbf,omitempty"`
	FqCodel *FqCodel `json:"fq_codel,omitempty"`
	// Stats are read back from the kernel; never written.
	Stats Stats `json:"-"`
}

// Netem are netem's parameters; percentages are 0..100.
type Netem struct {
	Delay, Jitter             time.Duration
	DelayCorr, Loss, LossCorr float64
	Duplicate, Corrupt        float64
	Reorder                   float64
	Gap                       uint32
	RateBytes                 uint64
	Limit                     uint32
}

// Tbf is a token bucket: rate in bytes per second, burst and queue limit in
// bytes.
type Tbf struct {
	RateBytes uint64
	Burst     uint32
	Limit     uint32
}

// FqCodel holds the fq_codel parameters the agent can put back when it
// replaced a configured fq_codel root (policy network.replace_root_qdisc).
type FqCodel struct {
	Target, Interval time.Duration
	Limit, Flows     uint32
	Quantum          uint32
	ECN              bool
}

// Stats are a qdisc's counters.
type Stats struct {
	Packets, Bytes, Drops, Overlimits uint64
}

// Class is an htb class.
type Class struct {
	Link      string
	Handle    uint32
	Parent    uint32
	RateBytes uint64
}

// U32Key matches the 32-bit word at Off (from the network header) under
// Mask against Val; Val and Mask are in host order here.
type U32Key struct {
	Off       int32
	Mask, Val uint32
}

// Filter is a u32 filter that sends matching packets to FlowID.
type Filter struct {
	Link     string
	Parent   uint32
	Priority uint16
	Protocol uint16
	FlowID   uint32
	Keys     []U32Key
	// Pass, on an ingress qdisc, lets matching packets through without
	// classifying them further: an exclusion, never redirected.
	Pass bool
	// RedirectTo, on an ingress qdisc, names the device matching packets
	// are redirected to (mirred egress redirect): the agent's ifb.
	RedirectTo string
	// Why is what the filter is for, shown in the fault's status.
	Why string
}

// ops is the part of the kernel the network injector needs. The Linux
// implementation is netlink; tests use an in-memory fake.
type ops interface {
	// Qdiscs lists link's qdiscs (ErrNoInterface if there is no link).
	Qdiscs(link string) ([]Qdisc, error)
	// ReplaceQdisc creates q, replacing what is at its parent.
	ReplaceQdisc(Qdisc) error
	// DeleteQdisc deletes q and everything under it.
	DeleteQdisc(Qdisc) error
	AddClass(Class) error
	AddFilter(Filter) error
	// Links lists every interface's name (the sweep).
	Links() ([]string, error)
	// Filters lists the filters at parent on link (Parent, Priority and
	// Protocol are what is read back).
	Filters(link string, parent uint32) ([]Filter, error)
	// DeleteFilters deletes every filter of priority prio and protocol
	// proto at parent on link.
	DeleteFilters(link string, parent uint32, prio, proto uint16) error
	// AddIFB creates the ifb device name with alias (its owner mark,
	// IFLA_IFALIAS) and sets it up.
	AddIFB(name, alias string) error
	// LinkAlias returns the alias of device name ("" for none).
	LinkAlias(name string) (string, error)
	// DeleteLink deletes the device name (ErrNoInterface if it is gone).
	DeleteLink(name string) error
}

// String renders a qdisc as one canonical line, like tc.
func (q Qdisc) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "qdisc %s %s dev %s ", q.Kind, fmtHandle(q.Handle), q.Link)
	switch q.Parent {
	case HandleRoot:
		b.WriteString("root")
	case HandleIngress:
		b.WriteString("ingress")
	default:
		fmt.Fprintf(&b, "parent %s", fmtHandle(q.Parent))
	}
	if n := q.Netem; n != nil {
		fmt.Fprintf(&b, " delay %s jitter %s corr %g%% loss %g%% corr %g%% duplicate %g%% corrupt %g%% reorder %g%% gap %d rate %dB/s",
			n.Delay, n.Jitter, n.DelayCorr, n.Loss, n.LossCorr, n.Duplicate, n.Corrupt, n.Reorder, n.Gap, n.RateBytes)
	}
	if t := q.Tbf; t != nil {
		fmt.Fprintf(&b, " rate %dB/s burst %d limit %d", t.RateBytes, t.Burst, t.Limit)
	}
	return b.String()
}

// String renders a class as one canonical line.
func (c Class) String() string {
	return fmt.Sprintf("class htb %s dev %s parent %s rate %dB/s", fmtHandle(c.Handle), c.Link, fmtHandle(c.Parent), c.RateBytes)
}

// String renders a filter as one canonical line.
func (f Filter) String() string {
	var b strings.Builder
	proto := "ip"
	if f.Protocol == ethPIPv6 {
		proto = "ipv6"
	}
	fmt.Fprintf(&b, "filter u32 dev %s parent %s prio %d %s", f.Link, fmtHandle(f.Parent), f.Priority, proto)
	for _, k := range f.Keys {
		fmt.Fprintf(&b, " match %08x/%08x at %d", k.Val, k.Mask, k.Off)
	}
	switch {
	case f.Pass:
		b.WriteString(" pass")
	case f.RedirectTo != "":
		fmt.Fprintf(&b, " action mirred egress redirect dev %s", f.RedirectTo)
	default:
		fmt.Fprintf(&b, " flowid %s", fmtHandle(f.FlowID))
	}
	return b.String()
}

func fmtHandle(h uint32) string {
	if h == HandleRoot {
		return "root"
	}
	if h&0xffff == 0 {
		return fmt.Sprintf("%x:", h>>16)
	}
	return fmt.Sprintf("%x:%x", h>>16, h&0xffff)
}

// prefixKeys matches an address prefix at base (12/16 for IPv4 source/
// destination, 8/24 for IPv6): one key per 32-bit word the prefix covers.
func prefixKeys(p netip.Prefix, base int32) []U32Key {
	p = p.Masked()
	raw := p.Addr().AsSlice()
	bits := p.Bits()
	var keys []U32Key
	for w := 0; w < len(raw)/4 && bits > 0; w++ {
		n := min(bits, 32)
		mask := uint32(0xffffffff) << (32 - n)
		val := uint32(raw[4*w])<<24 | uint32(raw[4*w+1])<<16 | uint32(raw[4*w+2])<<8 | uint32(raw[4*w+3])
		keys = append(keys, U32Key{Off: base + int32(4*w), Mask: mask, Val: val & mask})
		bits -= n
	}
	return keys
}
