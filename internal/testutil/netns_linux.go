package testutil

import (
	"net"
	"net/netip"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NSPair is two network namespaces made by a test, joined by a veth pair,
// with addresses from 198.18.0.0/15 only (docs/design.md, testing levels).
type NSPair struct {
	A, B   netns.NsHandle
	HA, HB *netlink.Handle
	// LinkA is the veth end in A, LinkB the one in B.
	LinkA, LinkB string
	// AddrA and AddrsB are the addresses on each end; AddrsB[0] is the
	// first, the others are extra addresses of B (to tell targets apart).
	AddrA  netip.Addr
	AddrsB []netip.Addr
}

// NewNSPair makes the namespaces and the veth pair: A has 198.18.0.1/24
// and fd00:198:18::1/64, B has .2, plus extraB more IPv4 addresses (.3, .4
// …) and fd00:198:18::2/64. Everything is removed at t's cleanup.
func NewNSPair(t testing.TB, extraB int) *NSPair {
	t.Helper()
	p := &NSPair{LinkA: "turb-a", LinkB: "turb-b", AddrA: netip.MustParseAddr("198.18.0.1")}
	p.A = NewNS(t)
	p.B = NewNS(t)
	var err error
	if p.HA, err = netlink.NewHandleAt(p.A); err != nil {
		t.Fatalf("netlink handle in A: %v", err)
	}
	t.Cleanup(p.HA.Close)
	if p.HB, err = netlink.NewHandleAt(p.B); err != nil {
		t.Fatalf("netlink handle in B: %v", err)
	}
	t.Cleanup(p.HB.Close)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: p.LinkA, TxQLen: 1000}, PeerName: p.LinkB, PeerNamespace: netlink.NsFd(int(p.B))}
	if err := p.HA.LinkAdd(veth); err != nil {
		t.Fatalf("add veth pair: %v", err)
	}
	for i := range 1 + extraB {
		p.AddrsB = append(p.AddrsB, netip.AddrFrom4([4]byte{198, 18, 0, byte(2 + i)}))
	}
	setUp(t, p.HA, p.LinkA, []string{"198.18.0.1/24", "fd00:198:18::1/64"})
	bs := []string{"fd00:198:18::2/64"}
	for _, a := range p.AddrsB {
		bs = append(bs, a.String()+"/24")
	}
	setUp(t, p.HB, p.LinkB, bs)
	// Permanent neighbours: no packet waits on (or is dropped during)
	// ARP or neighbour discovery, so counts in tests are exact.
	la, _ := p.HA.LinkByName(p.LinkA)
	lb, _ := p.HB.LinkByName(p.LinkB)
	neigh := func(h *netlink.Handle, on netlink.Link, mac net.HardwareAddr, ip netip.Addr) {
		n := &netlink.Neigh{LinkIndex: on.Attrs().Index, State: netlink.NUD_PERMANENT, IP: ip.AsSlice(), HardwareAddr: mac}
		if err := h.NeighSet(n); err != nil {
			t.Fatalf("neighbour %s: %v", ip, err)
		}
	}
	for _, a := range p.AddrsB {
		neigh(p.HA, la, lb.Attrs().HardwareAddr, a)
	}
	neigh(p.HA, la, lb.Attrs().HardwareAddr, netip.MustParseAddr("fd00:198:18::2"))
	neigh(p.HB, lb, la.Attrs().HardwareAddr, p.AddrA)
	neigh(p.HB, lb, la.Attrs().HardwareAddr, netip.MustParseAddr("fd00:198:18::1"))
	return p
}

// NewNS makes an empty network namespace (loopback up) without moving the
// calling thread into it; it is closed at t's cleanup.
func NewNS(t testing.TB) netns.NsHandle {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatalf("get current netns: %v", err)
	}
	defer func() { _ = orig.Close() }()
	ns, err := netns.New()
	if err != nil {
		t.Fatalf("new netns: %v", err)
	}
	if err := netns.Set(orig); err != nil {
		// The thread is stuck in the new namespace: let it die with the
		// goroutine rather than run other tests there.
		runtime.LockOSThread()
		t.Fatalf("return to the original netns: %v", err)
	}
	t.Cleanup(func() { _ = ns.Close() })
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatalf("netlink handle: %v", err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		t.Fatalf("loopback up: %v", err)
	}
	return ns
}

func setUp(t testing.TB, h *netlink.Handle, name string, addrs []string) {
	t.Helper()
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatalf("link %s: %v", name, err)
	}
	for _, a := range addrs {
		addr, err := netlink.ParseAddr(a)
		if err != nil {
			t.Fatalf("address %s: %v", a, err)
		}
		// No duplicate address detection: the IPv6 address is usable at once.
		addr.Flags |= unix.IFA_F_NODAD
		if err := h.AddrAdd(l, addr); err != nil {
			t.Fatalf("add %s to %s: %v", a, name, err)
		}
	}
	if err := h.LinkSetUp(l); err != nil {
		t.Fatalf("set %s up: %v", name, err)
	}
}

// InNS runs fn on a thread inside ns, and returns once it is done. Sockets
// fn opens stay in ns when used from other goroutines afterwards.
func InNS(t testing.TB, ns netns.NsHandle, fn func()) {
	t.Helper()
	done := make(chan struct{})
	var setErr error
	go func() {
		defer close(done)
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			setErr = err
			runtime.UnlockOSThread()
			return
		}
		defer func() { _ = orig.Close() }()
		if err := netns.Set(ns); err != nil {
			setErr = err
			runtime.UnlockOSThread()
			return
		}
		fn()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		} // else the locked thread ends with this goroutine
	}()
	<-done
	if setErr != nil {
		t.Fatalf("enter netns: %v", setErr)
	}
}

// ListenIn opens a listener of network (tcp, udp…) on addr inside ns.
func ListenIn(t testing.TB, ns netns.NsHandle, network, addr string) net.Listener {
	t.Helper()
	var l net.Listener
	var err error
	InNS(t, ns, func() { l, err = net.Listen(network, addr) })
	if err != nil {
		t.Fatalf("listen %s %s: %v", network, addr, err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}
