package hostinfo

import (
	"runtime"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// KernelFeatures probes what the kernel can do for network faults and
// returns the names of what it found (FeatureNetem, …), sorted as listed
// there. It tries each thing for real in a throwaway network namespace —
// a qdisc on a veth there, an nftables table there — so that the host is
// never touched and an autoloadable module counts as present. Without
// root it finds nothing: the agent runs as root.
func KernelFeatures() []string {
	ns, err := newNS()
	if err != nil {
		return nil
	}
	defer func() { _ = ns.Close() }()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil
	}
	defer h.Close()
	var out []string
	// The ifb first: the mirred probe redirects to it.
	ifbIndex := 0
	if h.LinkAdd(&netlink.Ifb{LinkAttrs: netlink.LinkAttrs{Name: "probeifb"}}) == nil {
		if l, err := h.LinkByName("probeifb"); err == nil {
			ifbIndex = l.Attrs().Index
		}
	}
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "probe0"}, PeerName: "probe1"}
	if err := h.LinkAdd(veth); err == nil {
		l, err := h.LinkByName("probe0")
		if err == nil {
			out = append(out, probeQdiscs(h, l.Attrs().Index, ifbIndex)...)
		}
	}
	if ifbIndex > 0 {
		out = append(out, FeatureIFB)
	}
	if c, err := nftables.New(nftables.WithNetNSFd(int(ns))); err == nil {
		c.AddTable(&nftables.Table{Name: "probe", Family: nftables.TableFamilyINet})
		if c.Flush() == nil {
			out = append(out, FeatureNftables)
		}
	}
	return out
}

// probeQdiscs tries each qdisc on link idx; ifbIndex > 0 is an ifb to
// which the ingress probe redirects, as an ingress fault does.
func probeQdiscs(h *netlink.Handle, idx, ifbIndex int) []string {
	root := netlink.QdiscAttrs{LinkIndex: idx, Handle: netlink.MakeHandle(1, 0), Parent: netlink.HANDLE_ROOT}
	try := func(q netlink.Qdisc) bool {
		if err := h.QdiscReplace(q); err != nil {
			return false
		}
		_ = h.QdiscDel(q) // the namespace goes anyway
		return true
	}
	var out []string
	if try(netlink.NewNetem(root, netlink.NetemQdiscAttrs{Latency: 1000})) {
		out = append(out, FeatureNetem)
	}
	if try(netlink.NewPrio(root)) {
		out = append(out, FeaturePrio)
	}
	if try(&netlink.Tbf{QdiscAttrs: root, Rate: 125000, Limit: 10000, Buffer: netlink.Xmittime(125000, 3000)}) {
		out = append(out, FeatureTbf)
	}
	htb := netlink.NewHtb(root)
	if h.QdiscReplace(htb) == nil {
		out = append(out, FeatureHtb)
		u32 := &netlink.U32{FilterAttrs: netlink.FilterAttrs{LinkIndex: idx, Parent: root.Handle, Priority: 1, Protocol: 0x0800}, ClassId: root.Handle}
		if h.FilterAdd(u32) == nil {
			out = append(out, FeatureU32)
		}
		_ = h.QdiscDel(htb)
	}
	ingress := &netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: idx, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_INGRESS}}
	if h.QdiscReplace(ingress) == nil {
		out = append(out, FeatureIngress)
		// An ingress fault steers the interface's incoming packets to
		// its ifb with a mirred redirect: act_mirred must load too.
		if ifbIndex > 0 {
			redirect := &netlink.U32{
				FilterAttrs: netlink.FilterAttrs{LinkIndex: idx, Parent: ingress.Handle, Priority: 1, Protocol: unix.ETH_P_ALL},
				Actions:     []netlink.Action{netlink.NewMirredAction(ifbIndex)},
			}
			if h.FilterAdd(redirect) == nil {
				out = append(out, FeatureMirred)
			}
		}
		_ = h.QdiscDel(ingress)
	}
	return out
}

// newNS makes a network namespace without leaving the calling thread in
// it.
func newNS() (netns.NsHandle, error) {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return netns.None(), err
	}
	defer func() { _ = orig.Close() }()
	ns, err := netns.New()
	if err != nil {
		runtime.UnlockOSThread()
		return netns.None(), err
	}
	if err := netns.Set(orig); err != nil {
		// Stuck in the probe namespace: the thread dies with this
		// goroutine (still locked) rather than serve the agent from there.
		_ = ns.Close()
		return netns.None(), err
	}
	runtime.UnlockOSThread()
	return ns, nil
}
