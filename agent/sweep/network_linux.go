package sweep

import (
	"errors"
	"fmt"
	"strings"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/turbulence-sre/turbulence/agent/inject/network"
	"github.com/turbulence-sre/turbulence/agent/inject/partition"
)

// Network removes, in the calling thread's network namespace, every root
// qdisc whose handle is in the agent's range (network.HandleMajorMin…Max),
// the agent's ingress redirects (ingress filters whose priority is in
// network.IngressPrioMin…Max: the kernel names every ingress qdisc ffff:,
// so the filters carry the mark), every ifb device named
// network.IFBPrefix… and every inet nftables table named
// partition.TablePrefix…, and returns what it removed ("qdisc 7400: dev
// eth0", "qdisc ingress ffff: dev eth0", "link ifb tifb0123abcd", "table
// inet turbulence-f-1").
// Deleting the agent's root brings the kernel's default root back; a root
// the agent replaced under policy is restored from the journal, not here:
// without it nothing knows what was there.
func Network() ([]string, error) {
	var removed []string
	var errs []error
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open netlink: %w", err)
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		errs = append(errs, fmt.Errorf("list interfaces: %w", err))
	}
	var ifbs []netlink.Link
	for _, l := range links {
		name := l.Attrs().Name
		if l.Type() == "ifb" && strings.HasPrefix(name, network.IFBPrefix) {
			ifbs = append(ifbs, l) // deleted below, with its qdiscs
			continue
		}
		qs, err := h.QdiscList(l)
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			errs = append(errs, fmt.Errorf("list qdiscs of %s: %w", name, err))
			continue
		}
		for _, q := range qs {
			a := q.Attrs()
			if a.Parent == netlink.HANDLE_INGRESS {
				// The redirect goes before the ifb it points at.
				what, err := network.SweepIngress(h, name)
				if err != nil {
					errs = append(errs, err)
				} else if what != "" {
					removed = append(removed, what)
				}
				continue
			}
			if a.Parent != netlink.HANDLE_ROOT || !network.IsAgentHandle(a.Handle) {
				continue
			}
			if err := h.QdiscDel(q); err != nil {
				errs = append(errs, fmt.Errorf("delete qdisc %s on %s: %w", netlink.HandleStr(a.Handle), name, err))
				continue
			}
			removed = append(removed, fmt.Sprintf("qdisc %s dev %s", netlink.HandleStr(a.Handle), name))
		}
	}
	for _, l := range ifbs {
		if err := h.LinkDel(l); err != nil {
			errs = append(errs, fmt.Errorf("delete ifb device %s: %w", l.Attrs().Name, err))
			continue
		}
		removed = append(removed, "link ifb "+l.Attrs().Name)
	}
	c, err := nftables.New()
	if err != nil {
		return removed, errors.Join(append(errs, fmt.Errorf("open nftables: %w", err))...)
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		errs = append(errs, fmt.Errorf("list nftables tables: %w", err))
	}
	var names []string
	for _, t := range tables {
		if strings.HasPrefix(t.Name, partition.TablePrefix) {
			c.DelTable(t)
			names = append(names, t.Name)
		}
	}
	if len(names) > 0 {
		// One batch: every orphan table goes, or none and the error says so.
		if err := c.Flush(); err != nil {
			errs = append(errs, fmt.Errorf("delete nftables tables %s: %w", strings.Join(names, ", "), err))
		} else {
			for _, n := range names {
				removed = append(removed, "table inet "+n)
			}
		}
	}
	return removed, errors.Join(errs...)
}
