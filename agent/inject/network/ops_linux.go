package network

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// dumpRetries bounds the retries of a netlink dump the kernel interrupted
// (the interface changed during it), as docs/dependencies.md asks.
const dumpRetries = 5

// netlinkOps is ops over one netlink handle: the host's (hostOps, in the
// calling thread's network namespace) or one at a namespace (tests).
type netlinkOps struct {
	h *netlink.Handle
}

func hostOps() ops {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return errOps{err: fmt.Errorf("open netlink: %w", err)}
	}
	return netlinkOps{h: h}
}

// NewWithHandle returns an injector working through h (a handle made with
// netlink.NewHandleAt in a test's namespace).
func NewWithHandle(cfg Config, h *netlink.Handle) *Injector {
	return newWithOps(cfg, netlinkOps{h: h})
}

// NewInNetNS returns an injector working in the network namespace whose
// file descriptor is netnsFD (agent.Config.NetNS).
func NewInNetNS(cfg Config, netnsFD int) *Injector {
	h, err := netlink.NewHandleAt(netns.NsHandle(netnsFD))
	if err != nil {
		return newWithOps(cfg, errOps{err: fmt.Errorf("open netlink in network namespace %d: %w", netnsFD, err)})
	}
	return NewWithHandle(cfg, h)
}

func (o netlinkOps) link(name string) (netlink.Link, error) {
	l, err := o.h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil, fmt.Errorf("%w %q on this host", ErrNoInterface, name)
		}
		return nil, fmt.Errorf("look up interface %q: %w", name, err)
	}
	return l, nil
}

func (o netlinkOps) Qdiscs(name string) ([]Qdisc, error) {
	l, err := o.link(name)
	if err != nil {
		return nil, err
	}
	var qs []netlink.Qdisc
	for range dumpRetries {
		qs, err = o.h.QdiscList(l)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("list qdiscs of %s: %w", name, err)
	}
	out := make([]Qdisc, 0, len(qs))
	for _, q := range qs {
		out = append(out, fromNetlink(name, q))
	}
	return out, nil
}

func fromNetlink(link string, q netlink.Qdisc) Qdisc {
	a := q.Attrs()
	out := Qdisc{Link: link, Kind: q.Type(), Handle: a.Handle, Parent: a.Parent}
	switch v := q.(type) {
	case *netlink.Tbf:
		out.Tbf = &Tbf{RateBytes: v.Rate, Burst: netlink.Xmitsize(v.Rate, v.Buffer), Limit: v.Limit}
	case *netlink.FqCodel:
		out.FqCodel = &FqCodel{Target: usec(v.Target), Interval: usec(v.Interval), Limit: v.Limit, Flows: v.Flows, Quantum: v.Quantum, ECN: v.ECN != 0}
	case *netlink.Netem:
		out.Netem = &Netem{
			Delay: ticks(v.Latency), Jitter: ticks(v.Jitter),
			DelayCorr: percent(v.DelayCorr), Loss: percent(v.Loss), LossCorr: percent(v.LossCorr),
			Duplicate: percent(v.Duplicate), Corrupt: percent(v.CorruptProb), Reorder: percent(v.ReorderProb),
			Gap: v.Gap, RateBytes: v.Rate64, Limit: v.Limit,
		}
	}
	if s := a.Statistics; s != nil {
		if s.Basic != nil {
			out.Stats.Packets, out.Stats.Bytes = uint64(s.Basic.Packets), s.Basic.Bytes
		}
		if s.Queue != nil {
			out.Stats.Drops, out.Stats.Overlimits = uint64(s.Queue.Drops), uint64(s.Queue.Overlimits)
		}
	}
	return out
}

func (o netlinkOps) ReplaceQdisc(q Qdisc) error {
	l, err := o.link(q.Link)
	if err != nil {
		return err
	}
	nq, err := toNetlink(q, l.Attrs().Index)
	if err != nil {
		return err
	}
	return o.h.QdiscReplace(nq)
}

// toNetlink is where the values asked for become the netlink attributes
// the kernel gets (fromNetlink is its inverse, for read-back): netem's
// times in the kernel's scheduler ticks, its percentages as fractions of
// 2^32, rates in bytes per second.
func toNetlink(q Qdisc, linkIndex int) (netlink.Qdisc, error) {
	attrs := netlink.QdiscAttrs{LinkIndex: linkIndex, Handle: q.Handle, Parent: q.Parent}
	switch q.Kind {
	case "htb":
		// Defcls 0: what no filter classifies goes through htb's direct
		// queue, untouched.
		h := netlink.NewHtb(attrs)
		h.Defcls = 0
		return h, nil
	case "netem":
		n := q.Netem
		if n == nil {
			return nil, errors.New("netem qdisc without netem parameters")
		}
		return netlink.NewNetem(attrs, netlink.NetemQdiscAttrs{
			Latency:     uint32(n.Delay.Microseconds()),
			Jitter:      uint32(n.Jitter.Microseconds()),
			DelayCorr:   float32(n.DelayCorr),
			Loss:        float32(n.Loss),
			LossCorr:    float32(n.LossCorr),
			Duplicate:   float32(n.Duplicate),
			CorruptProb: float32(n.Corrupt),
			ReorderProb: float32(n.Reorder),
			Gap:         n.Gap,
			Rate64:      n.RateBytes,
			Limit:       n.Limit,
		}), nil
	case "tbf":
		t := q.Tbf
		if t == nil {
			return nil, errors.New("tbf qdisc without tbf parameters")
		}
		return &netlink.Tbf{QdiscAttrs: attrs, Rate: t.RateBytes, Limit: t.Limit, Buffer: netlink.Xmittime(t.RateBytes, t.Burst)}, nil
	case "ingress":
		// The kernel names every ingress qdisc ffff: whatever is asked.
		attrs.Handle, attrs.Parent = IngressHandle, HandleIngress
		return &netlink.Ingress{QdiscAttrs: attrs}, nil
	case "fq_codel":
		f := q.FqCodel
		ecn := uint32(0)
		if f.ECN {
			ecn = 1
		}
		return &netlink.FqCodel{QdiscAttrs: attrs, Target: uint32(f.Target.Microseconds()), Interval: uint32(f.Interval.Microseconds()),
			Limit: f.Limit, Flows: f.Flows, Quantum: f.Quantum, ECN: ecn}, nil
	default:
		return nil, fmt.Errorf("qdisc kind %q is not one the agent creates", q.Kind)
	}
}

func (o netlinkOps) DeleteQdisc(q Qdisc) error {
	l, err := o.link(q.Link)
	if err != nil {
		return err
	}
	return o.h.QdiscDel(&netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: l.Attrs().Index, Handle: q.Handle, Parent: q.Parent},
		QdiscType:  q.Kind,
	})
}

func (o netlinkOps) AddClass(c Class) error {
	l, err := o.link(c.Link)
	if err != nil {
		return err
	}
	cl := netlink.NewHtbClass(netlink.ClassAttrs{LinkIndex: l.Attrs().Index, Handle: c.Handle, Parent: c.Parent},
		netlink.HtbClassAttrs{Rate: c.RateBytes, Ceil: c.RateBytes})
	return o.h.ClassAdd(cl)
}

func (o netlinkOps) AddFilter(f Filter) error {
	l, err := o.link(f.Link)
	if err != nil {
		return err
	}
	sel := &netlink.TcU32Sel{Flags: nl.TC_U32_TERMINAL}
	for _, k := range f.Keys {
		// Host order here: netlink converts Mask and Val to network order.
		sel.Keys = append(sel.Keys, netlink.TcU32Key{Off: k.Off, Mask: k.Mask, Val: k.Val})
	}
	sel.Nkeys = uint8(len(sel.Keys))
	u := &netlink.U32{
		FilterAttrs: netlink.FilterAttrs{LinkIndex: l.Attrs().Index, Parent: f.Parent, Priority: f.Priority, Protocol: f.Protocol},
		ClassId:     f.FlowID,
		Sel:         sel,
	}
	switch {
	case f.Pass:
		// A classid and no action: on the ingress hook a classified
		// packet goes on (TC_ACT_OK, tc_index 0) and u32 stops at the
		// first match. Not gact ok: many kernels (this CI's) have no
		// act_gact.
		u.ClassId = RootHandle
	case f.RedirectTo != "":
		to, err := o.link(f.RedirectTo)
		if err != nil {
			return err
		}
		u.ClassId = 0
		u.Actions = []netlink.Action{netlink.NewMirredAction(to.Attrs().Index)}
	}
	return o.h.FilterAdd(u)
}

func (o netlinkOps) Filters(name string, parent uint32) ([]Filter, error) {
	l, err := o.link(name)
	if err != nil {
		return nil, err
	}
	var fs []netlink.Filter
	for range dumpRetries {
		fs, err = o.h.FilterList(l, parent)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("list filters of %s: %w", name, err)
	}
	out := make([]Filter, 0, len(fs))
	for _, f := range fs {
		a := f.Attrs()
		out = append(out, Filter{Link: name, Parent: a.Parent, Priority: a.Priority, Protocol: a.Protocol})
	}
	return out, nil
}

func (o netlinkOps) DeleteFilters(name string, parent uint32, prio, proto uint16) error {
	l, err := o.link(name)
	if err != nil {
		return err
	}
	return o.h.FilterDel(&netlink.U32{FilterAttrs: netlink.FilterAttrs{LinkIndex: l.Attrs().Index, Parent: parent, Priority: prio, Protocol: proto}})
}

// ifbQueueLen is the ifb's transmit queue: htb sizes its direct queue (the
// untouched traffic's) from it, and ifb's default of 32 packets would drop
// untouched traffic under load.
const ifbQueueLen = 1000

func (o netlinkOps) AddIFB(name, alias string) error {
	if err := o.h.LinkAdd(&netlink.Ifb{LinkAttrs: netlink.LinkAttrs{Name: name, TxQLen: ifbQueueLen}}); err != nil {
		return fmt.Errorf("create ifb device %s: %w", name, err)
	}
	l, err := o.link(name)
	if err == nil {
		err = o.h.LinkSetAlias(l, alias)
	}
	if err == nil {
		err = o.h.LinkSetUp(l)
	}
	if err != nil {
		return fmt.Errorf("set ifb device %s up: %w", name, err)
	}
	return nil
}

func (o netlinkOps) LinkAlias(name string) (string, error) {
	l, err := o.link(name)
	if err != nil {
		return "", err
	}
	return l.Attrs().Alias, nil
}

func (o netlinkOps) DeleteLink(name string) error {
	l, err := o.link(name)
	if err != nil {
		return err
	}
	return o.h.LinkDel(l)
}

func (o netlinkOps) Links() ([]string, error) {
	var ls []netlink.Link
	var err error
	for range dumpRetries {
		ls, err = o.h.LinkList()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(ls))
	for _, l := range ls {
		out = append(out, l.Attrs().Name)
	}
	return out, nil
}

// ticks converts a netem time in the kernel's scheduler ticks (as
// NewNetem encodes it) back to a duration, to the microsecond.
func ticks(v uint32) time.Duration {
	return time.Duration(math.Round(float64(v)/netlink.TickInUsec())) * time.Microsecond
}

// percent converts a netem probability (a fraction of 2^32, as
// netlink.Percentage2u32 encodes it) back to a percentage.
func percent(v uint32) float64 {
	if v == math.MaxUint32 {
		return 100
	}
	return float64(v) / (float64(math.MaxUint32) + 1) * 100
}

func usec(v uint32) time.Duration {
	if v == math.MaxUint32 {
		return 0
	}
	return time.Duration(v) * time.Microsecond
}
